package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// measureFloor times a raw loopback TCP copy of the bytes a push of each
// -data-mb size moves (that many MB to each of 2 receivers, at once):
// warm into buffers already written once, and fresh into new anonymous
// memory each time, whose first touch costs a page fault per page. No
// framework can push faster than the warm copy; the fresh one is what a
// receiver that allocates per message pays.
func measureFloor(r *Run) {
	if len(r.Opts.dataMB) == 0 {
		return
	}
	for _, mb := range r.Opts.dataMB {
		warm, fresh, err := tcpFloor(mb*1000*1000, 2)
		if err != nil {
			r.Skip("floor", fmt.Sprintf("tcp_warm_s_%d", mb), err.Error())
			continue
		}
		r.Floor[fmt.Sprintf("tcp_warm_s_%d", mb)] = warm.Seconds()
		r.Floor[fmt.Sprintf("tcp_fresh_s_%d", mb)] = fresh.Seconds()
		fmt.Printf("floor: loopback TCP copy of %d MB to 2 receivers: warm %.3f s, fresh buffers %.3f s\n", mb, warm.Seconds(), fresh.Seconds())
	}
}

// tcpFloor copies size bytes to each of receivers connections over
// loopback, best of two rounds for the warm and the fresh case.
func tcpFloor(size, receivers int) (warm, fresh time.Duration, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	var senders, recvs []net.Conn
	defer func() {
		for _, c := range append(senders, recvs...) {
			c.Close()
		}
	}()
	for range receivers {
		s, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return 0, 0, err
		}
		senders = append(senders, s)
		c, err := ln.Accept()
		if err != nil {
			return 0, 0, err
		}
		recvs = append(recvs, c)
	}
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	bufs := make([][]byte, receivers)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	// The first round writes the warm buffers; the next two are timed.
	for round := range 3 {
		d, err := tcpRound(src, senders, recvs, func(i int) ([]byte, func(), error) { return bufs[i], func() {}, nil })
		if err != nil {
			return 0, 0, err
		}
		if round > 0 && (warm == 0 || d < warm) {
			warm = d
		}
	}
	for range 2 {
		d, err := tcpRound(src, senders, recvs, func(int) ([]byte, func(), error) {
			b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
			if err != nil {
				return nil, nil, err
			}
			return b, func() { syscall.Munmap(b) }, nil
		})
		if err != nil {
			return 0, 0, err
		}
		if fresh == 0 || d < fresh {
			fresh = d
		}
	}
	return warm, fresh, nil
}

// tcpRound sends src on every sender and reads it whole on every
// receiver into the buffer dst gives, all at once; the time includes
// getting the fresh buffer (the mmap) but not releasing it.
func tcpRound(src []byte, senders, recvs []net.Conn, dst func(int) ([]byte, func(), error)) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, 2*len(recvs))
	releases := make([]func(), len(recvs))
	t0 := time.Now()
	for i := range recvs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, errs[2*i] = senders[i].Write(src)
		}()
		go func() {
			defer wg.Done()
			b, release, err := dst(i)
			if err != nil {
				errs[2*i+1] = err
				return
			}
			releases[i] = release
			_, errs[2*i+1] = io.ReadFull(recvs[i], b)
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	for _, rel := range releases {
		if rel != nil {
			rel()
		}
	}
	return d, errors.Join(errs...)
}
