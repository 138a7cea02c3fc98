package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

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
	decMode cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions() // RFC 8949 §4.2.1 core deterministic encoding
	eo.Time = cbor.TimeUnix
	var err error
	if encMode, err = eo.EncMode(); err != nil {
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
func Unmarshal(data []byte, v any) error {
	rest, err := decMode.UnmarshalFirst(data, v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	again, err := encMode.Marshal(reflect.ValueOf(v).Elem().Interface())
	if err != nil {
		return fmt.Errorf("%w: re-encode: %v", ErrMalformed, err)
	}
	if !bytes.Equal(again, data) {
		return ErrNonCanonical
	}
	return nil
}
