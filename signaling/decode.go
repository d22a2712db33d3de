package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// DecodeError is why DecodeClientMessage refused a message: Code
// (CodeBadMessage or CodeUnknownType) and Message are what the server
// answers; Type is the message's type when the envelope decoded, so that
// the server still applies that type's rules; Err is the decoder's error.
type DecodeError struct {
	Code    string
	Type    string
	Message string
	Err     error
}

func (e *DecodeError) Error() string {
	return "signaling: " + e.Code + ": " + e.Message
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeClientMessage decodes one client message as the server does: the
// envelope, then the whole object into its type's wire struct, returned as
// a pointer. It checks shape only; failures are *DecodeError. It is
// exported for the fuzz targets in fuzz/.
func DecodeClientMessage(data []byte) (typ string, msg any, err error) {
	var env wire.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return "", nil, &DecodeError{Code: wire.CodeBadMessage, Message: "not a JSON object with a string type", Err: err}
	}
	typ = env.Type
	if !isClientType(typ) {
		m := fmt.Sprintf("unknown message type %q", truncate(typ, maxEchoBytes))
		if isServerType(typ) {
			m = fmt.Sprintf("%q is sent by the server, not by clients", typ)
		}
		return typ, nil, &DecodeError{Code: wire.CodeUnknownType, Type: typ, Message: m}
	}
	switch typ {
	case wire.TypeJoin:
		msg = &wire.Join{}
	case wire.TypeOffer, wire.TypeAnswer:
		msg = &wire.SessionDescription{}
	case wire.TypeCandidate:
		msg = &wire.Candidate{}
	case wire.TypeSubscribe, wire.TypeUnsubscribe:
		msg = &wire.Subscribe{}
	case wire.TypeUnpublish:
		msg = &wire.Unpublish{}
	case wire.TypeMute:
		msg = &wire.Mute{}
	case wire.TypeRelay:
		msg = &wire.Relay{}
	case wire.TypePing, wire.TypePong:
		msg = &wire.Ping{}
	case wire.TypeLeave:
		msg = &wire.Leave{}
	}
	if err := json.Unmarshal(data, msg); err != nil {
		return typ, nil, &DecodeError{Code: wire.CodeBadMessage, Type: typ, Message: typ + ": " + fieldError(err), Err: err}
	}
	return typ, msg, nil
}

// fieldError says what is wrong in JSON terms, never the decoder's Go names.
func fieldError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, jsonKind(te.Type), te.Value)
	}
	return "a field has the wrong type"
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem()) + " or null"
	}
	return "another type"
}
