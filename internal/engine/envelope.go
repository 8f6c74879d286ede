package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An envelope is one journal message holding several accepted events, so
// that concurrent requests share one durable write (group commit).
//
// Layout: the version byte, then per event: ID, Room, Event, the header
// (count of keys, then per key its name, count of values and values), and
// the body. Strings and the body are a uvarint length and the bytes.
const envelopeVersion = 1

// errEnvelope marks a journal message that cannot be decoded.
var errEnvelope = errors.New("malformed journal envelope")

// appendEntry appends one event to an envelope being built.
func appendEntry(buf []byte, a Accepted) []byte {
	if len(buf) == 0 {
		buf = append(buf, envelopeVersion)
	}
	buf = appendString(buf, a.ID)
	buf = appendString(buf, a.Room)
	buf = appendString(buf, a.Event)
	buf = binary.AppendUvarint(buf, uint64(len(a.Header)))
	for k, vs := range a.Header {
		buf = appendString(buf, k)
		buf = binary.AppendUvarint(buf, uint64(len(vs)))
		for _, v := range vs {
			buf = appendString(buf, v)
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(a.Body)))
	return append(buf, a.Body...)
}

// entrySize bounds what appendEntry adds for a (varints at their longest).
func entrySize(a Accepted) int {
	n := 4*binary.MaxVarintLen64 + len(a.ID) + len(a.Room) + len(a.Event) + len(a.Body)
	for k, vs := range a.Header {
		n += 2*binary.MaxVarintLen64 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	return n
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decodeEnvelope returns the events of an envelope, in the order they were
// appended. Bodies alias data.
func decodeEnvelope(data []byte) ([]Accepted, error) {
	if len(data) == 0 || data[0] != envelopeVersion {
		return nil, fmt.Errorf("%w: unknown version", errEnvelope)
	}
	d := decoder{b: data[1:]}
	var out []Accepted
	for len(d.b) > 0 && d.err == nil {
		a := Accepted{ID: d.str(), Room: d.str(), Event: d.str()}
		if n := d.count(); n > 0 {
			a.Header = make(map[string][]string, n)
			for range n {
				k := d.str()
				vs := make([]string, d.count())
				for i := range vs {
					vs[i] = d.str()
				}
				a.Header[k] = vs
			}
		}
		a.Body = d.bytes()
		out = append(out, a)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no events", errEnvelope)
	}
	return out, nil
}

// decoder reads the envelope's fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad length", errEnvelope)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count is a number of items, each at least one byte long.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: count beyond the data", errEnvelope)
		return 0
	}
	return int(v)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: field beyond the data", errEnvelope)
	}
	if d.err != nil {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }
