package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The on-disk format of one database is an append-only log of records:
//
//	record  = length(4, big endian) crc(4, big endian, CRC-32C of payload) payload
//	payload = op(1) uvarint(len id) id uvarint(len rev) rev body
//
// op is opPut (body is the document's JSON without _id and _rev) or opDelete (body empty).
// The latest record for an id wins. A record whose length or checksum does not hold marks the
// end of the log: everything from it on is a torn write from a crash and is cut off when the log
// is opened. Nothing is ever rewritten in place, so a reader holding an offset never sees a
// record change under it.

const (
	opPut    byte = 'P'
	opDelete byte = 'D'

	recordHeader = 8
	// maxRecord bounds one record so a corrupted length cannot make replay allocate gigabytes.
	maxRecord = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// record is one decoded log record.
type record struct {
	op       byte
	id, rev  string
	body     []byte
	offset   int64 // where the record starts in the file
	size     int64 // header + payload
	bodyOff  int64 // where the body starts in the file
	bodySize int64
}

// encodeRecord appends the encoded record to buf and returns it with the body's offset inside
// the encoded bytes.
func encodeRecord(buf []byte, op byte, id, rev string, body []byte) ([]byte, int) {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeader)...)
	buf = append(buf, op)
	buf = binary.AppendUvarint(buf, uint64(len(id)))
	buf = append(buf, id...)
	buf = binary.AppendUvarint(buf, uint64(len(rev)))
	buf = append(buf, rev...)
	bodyAt := len(buf) - start
	buf = append(buf, body...)
	payload := buf[start+recordHeader:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	return buf, bodyAt
}

// errTorn marks the end of the valid part of a log.
var errTorn = errors.New("torn or corrupt record")

// decodePayload parses a payload whose checksum has been verified.
func decodePayload(p []byte) (op byte, id, rev string, bodyAt int, err error) {
	if len(p) < 1 {
		return 0, "", "", 0, errTorn
	}
	op = p[0]
	if op != opPut && op != opDelete {
		return 0, "", "", 0, fmt.Errorf("%w: unknown op %q", errTorn, op)
	}
	i := 1
	n, w := binary.Uvarint(p[i:])
	if w <= 0 || uint64(len(p)-i-w) < n {
		return 0, "", "", 0, fmt.Errorf("%w: bad id length", errTorn)
	}
	i += w
	id = string(p[i : i+int(n)])
	i += int(n)
	n, w = binary.Uvarint(p[i:])
	if w <= 0 || uint64(len(p)-i-w) < n {
		return 0, "", "", 0, fmt.Errorf("%w: bad rev length", errTorn)
	}
	i += w
	rev = string(p[i : i+int(n)])
	i += int(n)
	return op, id, rev, i, nil
}

// replay reads every valid record of f from the start, calling fn for each, and returns the
// offset just past the last valid record. A torn tail is not an error; I/O errors are.
func replay(f *os.File, fn func(r record) error) (int64, error) {
	var (
		off int64
		hdr [recordHeader]byte
		buf []byte
	)
	for {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			return off, err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		sum := binary.BigEndian.Uint32(hdr[4:])
		if n == 0 || n > maxRecord {
			return off, nil
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := f.ReadAt(buf, off+recordHeader); err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			return off, err
		}
		if crc32.Checksum(buf, crcTable) != sum {
			return off, nil
		}
		op, id, rev, bodyAt, err := decodePayload(buf)
		if err != nil {
			return off, nil
		}
		r := record{
			op: op, id: id, rev: rev, body: buf[bodyAt:],
			offset: off, size: recordHeader + int64(n),
			bodyOff: off + recordHeader + int64(bodyAt), bodySize: int64(int(n) - bodyAt),
		}
		if err := fn(r); err != nil {
			return off, err
		}
		off += r.size
	}
}
