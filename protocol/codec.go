package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Sentinel errors returned by the codec and by Open. Callers match them with
// errors.Is; the wrapped message says which field or limit failed.
var (
	ErrMalformed    = errors.New("protocol: malformed message")
	ErrNonCanonical = errors.New("protocol: non-canonical encoding")
	ErrTooLarge     = errors.New("protocol: message too large")
	ErrUnknownKind  = errors.New("protocol: unknown message kind")
	ErrWrongChain   = errors.New("protocol: wrong chain ID")
	ErrUnsigned     = errors.New("protocol: message is not signed")
	ErrBadSignature = errors.New("protocol: bad signature")
	ErrBadAuthor    = errors.New("protocol: bad author")
)

// MaxNesting bounds how deep arrays and maps may nest in any message, so a
// small hostile input cannot make the decoder recurse deeply.
const MaxNesting = 24

var (
	encMode cbor.EncMode
	bufMode cbor.UserBufferEncMode // encMode's options, encoding into a caller's buffer
	decMode cbor.DecMode
)

// bufPool holds the buffers Unmarshal re-encodes into and Verify builds
// signing bytes in: a large message (a proposal carries a whole block)
// then costs no fresh allocation, zeroing or copy out per check.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// putBuffer returns b to the pool unless it grew past any message size
// (a buffer that large is left to the collector).
func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 2*MaxEnvelope {
		bufPool.Put(b)
	}
}

func init() {
	eo := cbor.CoreDetEncOptions() // RFC 8949 §4.2.1 core deterministic encoding
	eo.Time = cbor.TimeUnix
	// A nil and an empty slice or map are the same message; encode both as
	// the empty item so that null never stands for "empty" and each value
	// has one encoding.
	eo.NilContainers = cbor.NilContainerAsEmpty
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	if bufMode, err = eo.UserBufferEncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   MaxNesting,
		MaxArrayElements:  1 << 20,
		MaxMapPairs:       1 << 16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v with the core deterministic CBOR encoding: the same value
// always gives the same bytes, so hashes and signatures over it are stable.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %T: %w", v, err)
	}
	return b, nil
}

// MustMarshal is Marshal for values whose encoding cannot fail (fixed wire
// structs); it panics otherwise and is meant for tests and constants.
func MustMarshal(v any) []byte {
	b, err := Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Unmarshal strictly decodes data into v. It rejects anything that Marshal
// would not have produced for the decoded value: duplicate or unsorted map
// keys, non-minimal integers and lengths, indefinite lengths, unknown struct
// fields and trailing bytes. Two different byte strings therefore never
// decode to the same message, which keeps content IDs and signatures unique.
//
// Beyond the encoder's rules it rejects, as ErrMalformed, any CBOR tag other
// than 42 (a CID link, whose content must be a byte string), the simple value
// undefined and every other simple value except false, true and null. Type
// mismatches (a float or text where an integer is expected, text for bytes,
// a negative number for an unsigned field) are ErrMalformed too.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("protocol: Unmarshal into non-pointer or nil %T", v)
	}
	// Decode into a fresh value and copy it out only when every check has
	// passed, so that bad input leaves *v as it was.
	fresh := reflect.New(rv.Elem().Type())
	rest, err := decMode.UnmarshalFirst(data, fresh.Interface())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	// The decoder accepted data, so it is one well-formed item nested at most
	// MaxNesting deep: the walk below cannot run off the end or recurse far.
	if _, err := checkItem(data, 0); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if err := bufMode.MarshalToBuffer(fresh.Elem().Interface(), buf); err != nil {
		return fmt.Errorf("%w: re-encode: %v", ErrMalformed, err)
	}
	if again := buf.Bytes(); !bytes.Equal(again, data) {
		i := 0
		for i < len(again) && i < len(data) && again[i] == data[i] {
			i++
		}
		return fmt.Errorf("%w: differs from the canonical form at byte %d", ErrNonCanonical, i)
	}
	rv.Elem().Set(fresh.Elem())
	return nil
}

// checkItem walks the well-formed CBOR item at the start of b and returns its
// length. It enforces the data model of the wire: no tags except 42 over a
// byte string, and no simple values except false, true and null (floats are
// allowed; the decoder already forbids NaN and infinities).
func checkItem(b []byte, depth int) (int, error) {
	if depth > MaxNesting+1 {
		return 0, errors.New("nested too deep")
	}
	if len(b) == 0 {
		return 0, errors.New("truncated item")
	}
	major, ai := b[0]>>5, b[0]&0x1f
	arg, n, err := itemArg(b)
	if err != nil {
		return 0, err
	}
	switch major {
	case 0, 1: // integers
		return n, nil
	case 2, 3: // byte and text strings; indefinite lengths are rejected by the decoder
		if ai == 31 {
			return 0, errors.New("indefinite-length string")
		}
		if arg > uint64(len(b)-n) {
			return 0, errors.New("truncated string")
		}
		return n + int(arg), nil
	case 4, 5: // arrays and maps
		if ai == 31 {
			return 0, errors.New("indefinite-length container")
		}
		items := arg
		if major == 5 {
			items *= 2
		}
		off := n
		for i := uint64(0); i < items; i++ {
			m, err := checkItem(b[off:], depth+1)
			if err != nil {
				return 0, err
			}
			off += m
		}
		return off, nil
	case 6: // tags
		if arg != cidTag {
			return 0, fmt.Errorf("CBOR tag %d not allowed (only %d, a CID link)", arg, cidTag)
		}
		if len(b) <= n || b[n]>>5 != 2 {
			return 0, fmt.Errorf("tag %d content is not a byte string", cidTag)
		}
		m, err := checkItem(b[n:], depth+1)
		return n + m, err
	default: // 7: simple values and floats
		switch {
		case ai == 20 || ai == 21 || ai == 22: // false, true, null
			return n, nil
		case ai == 25 || ai == 26 || ai == 27: // half, single, double floats
			return n, nil
		case ai == 23:
			return 0, errors.New("simple value undefined not allowed")
		default:
			return 0, fmt.Errorf("simple value %d not allowed", arg)
		}
	}
}

// itemArg decodes the head of the item at b[0]: its argument and the head
// length.
func itemArg(b []byte) (arg uint64, n int, err error) {
	ai := b[0] & 0x1f
	switch {
	case ai < 24:
		return uint64(ai), 1, nil
	case ai == 31:
		return 0, 1, nil
	case ai > 27:
		return 0, 0, fmt.Errorf("reserved additional information %d", ai)
	}
	size := 1 << (ai - 24) // 1, 2, 4 or 8 bytes follow
	if len(b) < 1+size {
		return 0, 0, errors.New("truncated item head")
	}
	for _, c := range b[1 : 1+size] {
		arg = arg<<8 | uint64(c)
	}
	return arg, 1 + size, nil
}
