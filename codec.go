package ipp

import "github.com/ipp-hpc/ipp/internal/codec"

// The client's only contact with the value codec: arguments are encoded
// into apply_request buffers and results decoded from apply_reply buffers
// (Go engines only). Large numeric slices travel as raw frames that alias
// the caller's memory, so values passed to Apply, Push, Scatter or Map must
// not be modified until their result is ready.

func encodeValue(v any) ([][]byte, error) { return codec.Encode(v) }

func decodeValue(frames [][]byte) (any, error) { return codec.Decode(frames) }

func decodeInto(frames [][]byte, ptr any) error { return codec.DecodeInto(frames, ptr) }
