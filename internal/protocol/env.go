package protocol

// Environment variables that cross a process boundary: a launcher, a job
// script or the user sets them, and another of our programs (or Python
// ipyparallel's, for the names it shares with us) reads them. Each name is
// spelled here only, so a setter and its reader cannot drift apart. Names
// marked "ipyparallel's" mean the same thing to Python's ipcontroller and
// ipengine; the others are ours.
const (
	// EnvPrefix starts every variable below. Test harnesses and the
	// bench strip the caller's variables with this prefix so that a
	// developer's shell cannot point a child at another cluster.
	EnvPrefix = "IPP_"

	// EnvConnectionInfo carries the engine connection file's JSON itself
	// (ipyparallel's, 8.0+). Set by every engine launcher (local,
	// mpiexec, ssh, batch submit environment) unless --no-connection-env;
	// read by engines (engine.LoadConnection) before they look for the
	// profile's file, so engines need no shared filesystem.
	EnvConnectionInfo = "IPP_CONNECTION_INFO"
	// EnvProfileDir is the profile directory (ipyparallel's). Set by
	// launchers for every process they start (ssh launchers put the
	// remote profile here); read by the controller and engine roles and
	// engine.LoadConnection when no --profile-dir is given.
	EnvProfileDir = "IPP_PROFILE_DIR"
	// EnvClusterID is the cluster id (ipyparallel's). Set by launchers
	// beside EnvProfileDir; read by the roles and engine.LoadConnection
	// to name the connection files ipcontroller-<id>-*.json.
	EnvClusterID = "IPP_CLUSTER_ID"
	// EnvSessionKey is the HMAC key (ipyparallel's). Set by the user or a
	// job script; read by the controller role, which otherwise makes a
	// new key.
	EnvSessionKey = "IPP_SESSION_KEY"

	// EnvEngineIDBase is the engine id of the first engine of one launch.
	// Set by the mpiexec/srun launchers, the ssh engine launcher and the
	// batch templates; read by engines, which ask for this base plus
	// their MPI rank or EnvEngineIndex, so successive launches do not
	// collide.
	EnvEngineIDBase = "IPP_ENGINE_ID_BASE"
	// EnvEngineIndex is the 0-based position of a non-MPI engine within
	// its launch (an array job's task index, whose own numbering may
	// start at 1). Set by the array batch templates and the ssh engine
	// launcher; read by engines (engine.RequestedIDFromEnv). Local
	// engines drop it so an ipcluster running inside an array task does
	// not pass its own index on.
	EnvEngineIndex = "IPP_ENGINE_INDEX"
	// EnvMPISize is the world size the mpiexec/srun launcher asked for.
	// Read by MPI engines, which refuse to run when MPI reports another
	// size (a binary started by the mpiexec of another MPI library sees
	// a world of one).
	EnvMPISize = "IPP_MPI_SIZE"
	// EnvControllerTimeout is the default of an engine's
	// --controller-timeout (seconds or a Go duration). Set by the user or
	// a job script for every engine it starts; read by the engine role.
	EnvControllerTimeout = "IPP_CONTROLLER_TIMEOUT"
	// EnvRegistrationTimeout is the default of an engine's --timeout, the
	// wait for the controller's registration_reply (seconds or a Go
	// duration). Set by the local engine launcher (unless already set),
	// whose controller is known to be up but may be slow to answer while
	// hundreds of engines start at once; read by the engine role and
	// engine.Main.
	EnvRegistrationTimeout = "IPP_REGISTRATION_TIMEOUT"

	// EnvTransport names the socket backend ("zmq" or "gozmq"). Set by
	// the user; read by the roles and the Go client when no backend is
	// configured.
	EnvTransport = "IPP_TRANSPORT"

	// EnvEnableCurve = "1" turns CurveZMQ on in a controller
	// (ipyparallel's). Set by the user; read by the controller role.
	EnvEnableCurve = "IPP_ENABLE_CURVE"
	// EnvCurveServerKey is the controller's CURVE public key
	// (ipyparallel's). Set by the user; read by engines and clients whose
	// connection info has no curve_serverkey.
	EnvCurveServerKey = "IPP_CURVE_SERVERKEY"
	// EnvCurveSecretKey is this process's own CURVE secret key
	// (ipyparallel's): the controller's, or an engine's or client's. Set
	// by the user; read by the controller role, engines and the client.
	EnvCurveSecretKey = "IPP_CURVE_SECRETKEY"
	// EnvCurvePublicKey is the public half of EnvCurveSecretKey
	// (ipyparallel's); the controller checks that the two belong
	// together.
	EnvCurvePublicKey = "IPP_CURVE_PUBLICKEY"

	// EnvIPCluster is the path of this project's ipcluster binary. Set by
	// the user for programs using the Cluster API that are not ipcluster
	// themselves; read by launchers.FindIPCluster.
	EnvIPCluster = "IPP_IPCLUSTER"
	// EnvRemoteIPCluster is our ipcluster program on the ssh launchers'
	// hosts (words, e.g. "~/bin/ipcluster"). Set by the user; read by
	// the ssh launchers when --remote-ipcluster is not given.
	EnvRemoteIPCluster = "IPP_REMOTE_IPCLUSTER"
	// EnvSSHIPCluster is the ipcluster command on the --ssh host of a
	// remote start (words). Set by the user; read by internal/remote
	// when --ssh-ipcluster (or ClusterOptions.SSHIPCluster) is not given.
	EnvSSHIPCluster = "IPP_SSH_IPCLUSTER"
	// EnvSSH replaces the ssh program (words, e.g. "ssh -4"). Set by the
	// user or tests; read by internal/sshx for every ssh it runs.
	EnvSSH = "IPP_SSH"
	// EnvSSHArgs adds arguments to every ssh invocation (words, e.g.
	// "-F ~/cluster.conf"). Set by the user, tests and the bench; read
	// by internal/sshx.
	EnvSSHArgs = "IPP_SSH_ARGS"

	// EnvNonInteractive = "1" turns off progress output while waiting
	// (ipyparallel's). Set by the user and by test harnesses and the bench
	// for the processes they start; read by the Go client's waits.
	EnvNonInteractive = "IPP_NONINTERACTIVE"
	// EnvCPUProfileDir makes each ipcluster process (and the bench) write
	// <role>-<pid>.pprof there at exit. Set by the user; read by
	// internal/cli and the bench.
	EnvCPUProfileDir = "IPP_CPUPROFILE_DIR"
	// EnvTraceDir makes each ipcluster process write an execution trace,
	// <role>-<pid>.trace, there (go tool trace): where goroutines waited,
	// which a CPU profile cannot show. Set by the user; read by
	// internal/cli.
	EnvTraceDir = "IPP_TRACE_DIR"
	// EnvBenchSSH is the ssh host the bench's tunnel measurement goes
	// through. Set by the user; read by the bench.
	EnvBenchSSH = "IPP_BENCH_SSH"
)
