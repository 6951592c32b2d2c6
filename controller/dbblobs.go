package controller

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"
)

// Large buffers of the task database live in files of their own, in a
// directory beside the SQLite file, not in SQLite blobs. A blob goes
// through SQLite's pages, its write-ahead log and then the checkpoint into
// the database file: a 10 MB push cost the writer ~160 ms of CPU (85 % of
// the controller's CPU in a profile of 10 MB pushes and pulls), more than
// the push itself. A file is one write. The row keeps blobMarker in
// place of the packed buffers, and the file holds them in the same
// packed form.
//
// A file is written before the transaction that refers to it commits, and
// removed only after the one that deletes its row did: a crash in between
// leaves a file no row refers to, never a row without its file. Names are
// a hash of the message id (a client chooses msg ids: one holding "../"
// must not name a path).

// blobMin is the size from which a record's request or result buffers
// go to a file. Below it SQLite's cost is small and a file per task
// would only multiply files.
const blobMin = 1 << 20

// blobMarker stands in the buffers column for buffers kept in a file. No
// packed list equals it: its first byte announces 105 buffers, which
// need more than the 13 bytes that follow.
var blobMarker = []byte("ipp-blob-file\x00")

// BlobDir is the directory of the large buffers of the task database at
// dbPath.
func BlobDir(dbPath string) string { return dbPath + ".blobs" }

// blob kinds: a record's request buffers and its result buffers.
const (
	blobRequest = "req"
	blobResult  = "res"
)

func (s *sqliteStore) blobPath(msgID, kind string) string {
	h := sha256.Sum256([]byte(msgID))
	return filepath.Join(BlobDir(s.path), hex.EncodeToString(h[:16])+"."+kind)
}

// storeBuffers returns what the buffers column of msgID gets for bufs:
// the packed buffers, or blobMarker once they are written to their file.
//
// written maps the buffers already written in this batch (by their
// memory, see sameMemory) to their file: a push to N engines is one
// upload whose N records share its buffers (fanout.go), and a hard link
// to the first file saves writing the same bytes N-1 more times. The
// batch holds every record it writes, so memory seen in it cannot have
// been freed and reused for other bytes in the meantime.
func (s *sqliteStore) storeBuffers(msgID, kind string, bufs [][]byte, written map[string]string) ([]byte, error) {
	if frameBytes(bufs) < blobMin {
		return packBuffers(bufs), nil
	}
	path := s.blobPath(msgID, kind)
	mem := sameMemory(bufs)
	if first, ok := written[mem]; ok {
		os.Remove(path) // a record written again: Link wants a free name
		if os.Link(first, path) == nil {
			return blobMarker, nil
		}
	}
	if err := writeBlob(path, bufs); err != nil {
		return nil, fmt.Errorf("buffers of %s: %w", msgID, err)
	}
	written[mem] = path
	return blobMarker, nil
}

// sameMemory names the memory of bufs: equal for two lists of the same
// slices of the same arrays.
func sameMemory(bufs [][]byte) string {
	b := make([]byte, 0, 16*len(bufs))
	for _, f := range bufs {
		b = binary.LittleEndian.AppendUint64(b, uint64(uintptr(unsafe.Pointer(unsafe.SliceData(f)))))
		b = binary.LittleEndian.AppendUint64(b, uint64(len(f)))
	}
	return string(b)
}

// loadBuffers unpacks the buffers column of msgID, reading its file when
// the column says they are in one.
func (s *sqliteStore) loadBuffers(msgID, kind string, col []byte) ([][]byte, error) {
	if !bytes.Equal(col, blobMarker) {
		return unpackBuffers(col)
	}
	data, err := os.ReadFile(s.blobPath(msgID, kind))
	if err != nil {
		return nil, fmt.Errorf("its buffers are in a file that cannot be read: %w", err)
	}
	return unpackBuffers(data)
}

// removeBlobs removes the files of deleted records; a record may have
// none.
func (s *sqliteStore) removeBlobs(msgIDs []string) {
	for _, id := range msgIDs {
		for _, kind := range []string{blobRequest, blobResult} {
			if err := os.Remove(s.blobPath(id, kind)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("task database: removing the buffers of a deleted record", "msg_id", id, "err", err)
			}
		}
	}
}

// writeBlob writes bufs to path in packBuffers' form, private to the
// user. Large buffers go to the file directly, not through the bufio
// buffer.
func writeBlob(path string, bufs [][]byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	var n [binary.MaxVarintLen64]byte
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(bufs)))])
	for _, b := range bufs {
		w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		w.Write(b)
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
