package pickle

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// checkLengths walks data's opcodes and refuses any length-prefixed
// argument longer than what is left of data. The unpickler allocates a
// declared length before reading it, so without this a corrupt 4- or
// 8-byte length (a few bytes of input) could ask for gigabytes.
func checkLengths(data []byte) error {
	i := 0
	need := func(n uint64, op byte) error {
		if n > uint64(len(data)-i) {
			return fmt.Errorf("pickle: opcode 0x%02x at %d declares %d bytes, %d remain", op, i-1, n, len(data)-i)
		}
		i += int(n)
		return nil
	}
	for i < len(data) {
		op := data[i]
		i++
		var err error
		switch op {
		case '.': // STOP
			return nil
		case 0x80, 'K', 'h', 'q', 0x82: // PROTO BININT1 BINGET BINPUT EXT1
			err = need(1, op)
		case 'M', 0x83: // BININT2 EXT2
			err = need(2, op)
		case 'J', 'j', 'r', 0x84: // BININT LONG_BINGET LONG_BINPUT EXT4
			err = need(4, op)
		case 'G': // BINFLOAT
			err = need(8, op)
		case 0x95: // FRAME: its length, then opcodes as usual
			if err = need(8, op); err == nil {
				n := binary.LittleEndian.Uint64(data[i-8 : i])
				if n > uint64(len(data)-i) {
					err = fmt.Errorf("pickle: frame at %d declares %d bytes, %d remain", i-9, n, len(data)-i)
				}
			}
		case 'U', 0x8c, 'C', 0x8a: // SHORT_BINSTRING SHORT_BINUNICODE SHORT_BINBYTES LONG1
			if err = need(1, op); err == nil {
				err = need(uint64(data[i-1]), op)
			}
		case 'T', 'X', 'B', 0x8b: // BINSTRING BINUNICODE BINBYTES LONG4
			if err = need(4, op); err == nil {
				err = need(uint64(binary.LittleEndian.Uint32(data[i-4:i])), op)
			}
		case 0x8d, 0x8e, 0x96: // BINUNICODE8 BINBYTES8 BYTEARRAY8
			if err = need(8, op); err == nil {
				err = need(binary.LittleEndian.Uint64(data[i-8:i]), op)
			}
		case 'I', 'L', 'F', 'S', 'V', 'P', 'g', 'p': // one text line
			err = skipLine(data, &i)
		case 'c', 'i': // GLOBAL INST: two text lines
			if err = skipLine(data, &i); err == nil {
				err = skipLine(data, &i)
			}
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("pickle: no STOP opcode in %d bytes", len(data))
}

func skipLine(data []byte, i *int) error {
	n := bytes.IndexByte(data[*i:], '\n')
	if n < 0 {
		return fmt.Errorf("pickle: unterminated text argument at %d", *i)
	}
	*i += n + 1
	return nil
}
