//go:build ignore

// (The line above keeps the go tool from treating this file as cgo source
// of package main; it is built by mpicc, see run.sh.)

/* allreduce.c: the C baseline for bench/mpi. Times MPI_Allreduce(SUM) of
 * one double (8 B) and of 1,048,576 doubles (8 MiB) on MPI_COMM_WORLD and
 * prints, on rank 0, {"c_8B_us": ..., "c_8MiB_us": ...} (mean µs per call).
 *
 *   mpicc.openmpi -O2 -o allreduce allreduce.c
 *   mpiexec.openmpi -n 2 ./allreduce [iters_8B] [iters_8MiB]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define BIG 1048576

static double timeit(const double *send, double *recv, int count, int warm, int iters)
{
	double t0;
	int i;

	for (i = 0; i < warm; i++)
		MPI_Allreduce(send, recv, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	MPI_Barrier(MPI_COMM_WORLD);
	t0 = MPI_Wtime();
	for (i = 0; i < iters; i++)
		MPI_Allreduce(send, recv, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	return (MPI_Wtime() - t0) / iters * 1e6;
}

int main(int argc, char **argv)
{
	int provided, rank, size, small = 10000, large = 20, i;
	double x, y, us8, usbig, *a, *b;

	MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc > 1)
		small = atoi(argv[1]);
	if (argc > 2)
		large = atoi(argv[2]);

	a = malloc(BIG * sizeof *a);
	b = malloc(BIG * sizeof *b);
	if (!a || !b)
		MPI_Abort(MPI_COMM_WORLD, 1);
	for (i = 0; i < BIG; i++)
		a[i] = rank + i * 1e-6;
	x = rank + 1;

	us8 = timeit(&x, &y, 1, small / 10 + 1, small);
	usbig = timeit(a, b, BIG, 2, large);

	/* Check the sums so a broken run cannot report a fast time. */
	if (y != size * (size + 1) / 2.0) {
		fprintf(stderr, "allreduce: rank %d: 8 B sum %g, want %g\n", rank, y, size * (size + 1) / 2.0);
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	if (rank == 0)
		printf("{\"ranks\": %d, \"c_8B_us\": %.3f, \"c_8MiB_us\": %.1f}\n", size, us8, usbig);
	free(a);
	free(b);
	MPI_Finalize();
	return 0;
}
