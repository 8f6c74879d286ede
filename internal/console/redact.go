package console

import (
	"encoding/json"
	"strings"
)

// redacted replaces the value of a sensitive key in a shown body.
const redacted = `"[redacted]"`

// sensitiveKey: a key whose value never reaches a page. LiveKit's room
// carries turnPassword (turn_password in proto naming, which decoders take
// too); any key naming a password or secret is treated alike.
func sensitiveKey(literal []byte) bool {
	var k string
	if json.Unmarshal(literal, &k) != nil {
		return false
	}
	k = strings.ToLower(strings.ReplaceAll(k, "_", ""))
	return strings.Contains(k, "password") || strings.Contains(k, "secret")
}

// redact returns body with the value of every sensitive key replaced by
// "[redacted]", every other byte as stored. It scans string literals the
// way a JSON reader does, so a key escaped as \u0050 is found too; a body
// that is not JSON is returned as it is, past the first unterminated
// string.
func redact(body []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(body); {
		if body[i] != '"' {
			i++
			continue
		}
		end := stringEnd(body, i)
		if end < 0 {
			break
		}
		j := skipSpace(body, end)
		if j < len(body) && body[j] == ':' && sensitiveKey(body[i:end]) {
			v := skipSpace(body, j+1)
			vEnd := valueEnd(body, v)
			out = append(out, body[last:v]...)
			out = append(out, redacted...)
			last, i = vEnd, vEnd
			continue
		}
		i = end
	}
	if out == nil {
		return body
	}
	return append(out, body[last:]...)
}

// stringEnd is the index after the string literal starting at i (-1 when
// unterminated).
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd is the index after the JSON value starting at i.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		if e := stringEnd(b, i); e >= 0 {
			return e
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return len(b)
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	return j
}
