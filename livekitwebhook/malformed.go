package livekitwebhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// malformedError says why a validly signed body is not a WebhookEvent
// without quoting the body: protojson's own message quotes the offending
// token, which can be any value the body carries (a turnPassword, room
// metadata), and the error goes to logs, spans and WithRefusalHandler. It
// keeps the kind of failure, the field path (schema names only) and the
// position.
func malformedError(body []byte, err error) error {
	msg := err.Error()
	what := "invalid value"
	switch {
	case strings.Contains(msg, "syntax error"):
		what = "syntax error"
	case strings.Contains(msg, "duplicate"):
		what = "duplicate field"
	case strings.Contains(msg, "recursion depth"):
		what = "nested too deeply"
	case strings.Contains(msg, "EOF"):
		what = "unexpected end"
	}
	m := protojsonPos.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%w: %s", ErrMalformedEvent, what)
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	return fmt.Errorf("%w: %s at %s (line %d, column %d)", ErrMalformedEvent, what,
		fieldPath(body, offsetOf(body, line, col)), line, col)
}

// protojsonPos finds the position protojson puts before its message.
var protojsonPos = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// offsetOf turns protojson's line and column (runes, from 1) into a byte
// offset of body.
func offsetOf(body []byte, line, col int) int {
	off := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(body[off:], '\n')
		if i < 0 {
			return len(body)
		}
		off += i + 1
	}
	for ; col > 1 && off < len(body); col-- {
		_, n := utf8.DecodeRune(body[off:])
		off += n
	}
	return off
}

// maxPathDepth bounds the walk: deeper than any WebhookEvent.
const maxPathDepth = 16

var eventDescriptor = (&livekit.WebhookEvent{}).ProtoReflect().Descriptor()

// pathFrame is an open JSON object or array during fieldPath's walk.
type pathFrame struct {
	array  bool
	msg    protoreflect.MessageDescriptor // an object of this message (nil: a map, or unknown)
	list   protoreflect.FieldDescriptor   // an array of this repeated field (nil: unknown)
	mapped protoreflect.FieldDescriptor   // an object of this map field
	field  protoreflect.FieldDescriptor   // the field whose value is being read
	elem   string                         // path element of that value
	idx    int                            // array: index of the value being read
	key    bool                           // object: a key comes next
}

// fieldPath names the WebhookEvent field whose value is at byte offset off
// of body, such as "room.sid" or "participant.tracks[1].mid". Only names
// from the schema appear: a key the schema does not know, or a map key,
// shows as "?", since keys are body content too.
func fieldPath(body []byte, off int) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*pathFrame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.elem == "" {
				break // a container opened just now: the path is its own
			}
			if !f.array && b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.elem)
		}
		if b.Len() == 0 {
			return "the top level"
		}
		return b.String()
	}
	for len(stack) <= maxPathDepth {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		past := dec.InputOffset() > int64(off)
		var top *pathFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if past {
				break
			}
			if len(stack) > 0 {
				stack[len(stack)-1].valueDone()
			}
			continue
		}
		if top != nil && !top.array && top.key {
			top.setKey(tok.(string))
			if past {
				break
			}
			continue
		}
		if top != nil && top.array {
			top.elem = "[" + strconv.Itoa(top.idx) + "]"
		}
		if past {
			break
		}
		d, ok := tok.(json.Delim)
		if !ok {
			if top != nil {
				top.valueDone()
			}
			continue
		}
		// A new object or array: what it holds follows from the field.
		next := &pathFrame{array: d == '[', key: d == '{'}
		switch fd := valueField(top); {
		case top == nil:
			next.msg = eventDescriptor
		case fd == nil:
		case d == '[' && fd.IsList() && !top.array:
			next.list = fd
		case d == '{' && fd.IsMap() && !top.array:
			next.mapped = fd
		case d == '{' && fd.Message() != nil && (!fd.IsList() || top.array):
			next.msg = fd.Message()
		}
		stack = append(stack, next)
	}
	return path()
}

// valueField is the field whose value the frame is reading.
func valueField(f *pathFrame) protoreflect.FieldDescriptor {
	switch {
	case f == nil:
		return nil
	case f.array:
		return f.list
	case f.mapped != nil:
		return f.mapped.MapValue()
	default:
		return f.field
	}
}

func (f *pathFrame) setKey(k string) {
	f.key, f.field, f.elem = false, nil, "?"
	if f.msg == nil {
		return
	}
	fields := f.msg.Fields()
	fd := fields.ByJSONName(k)
	if fd == nil {
		fd = fields.ByTextName(k)
	}
	if fd != nil {
		f.field, f.elem = fd, fd.JSONName()
	}
}

func (f *pathFrame) valueDone() {
	if f.array {
		f.idx++
	} else {
		f.key = true
	}
}
