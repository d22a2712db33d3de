package client

import (
	"errors"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Errors a caller branches on.
var (
	// ErrClosed: the Client is finished; Err reports it after Close and Leave.
	ErrClosed = errors.New("client: closed")
	// ErrDisconnected wraps a request that failed while the connection was
	// down; it can be retried once the client has reconnected.
	ErrDisconnected = errors.New("client: disconnected")
	// ErrReplaced is final: the same identity joined the room elsewhere.
	ErrReplaced = errors.New("client: session replaced by a newer join of the same identity")
	// ErrNotPublished: the server has not announced the publication (yet),
	// or it was unpublished.
	ErrNotPublished = errors.New("client: track not published")
	// ErrMessageTooLarge: the request exceeds the server's message size.
	ErrMessageTooLarge = errors.New("client: message too large for the server")
)

// ServerError is an error message from the server, returned (possibly
// wrapped) for a refused request; branch on Code, one of wire.Code*.
type ServerError struct {
	Code    string // wire.Code*
	Message string
	Ref     string // type of the message that caused it, when known
	RefID   string // id of the request that caused it, when it had one
	Fatal   bool   // the server closes the connection after it
}

// Error implements error.
func (e *ServerError) Error() string {
	if e.Message == "" {
		return "client: server error " + e.Code
	}
	return "client: server error " + e.Code + ": " + e.Message
}

func serverError(m *wire.Error) *ServerError {
	return &ServerError{Code: m.Code, Message: m.Message, Ref: m.Ref, RefID: m.RefID, Fatal: m.Fatal}
}

// permanent reports whether a join refused with err can never succeed by
// trying again with the same configuration.
func permanent(err error) bool {
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrReplaced) {
		return true
	}
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case wire.CodeTokenMissing, wire.CodeTokenMalformed, wire.CodeTokenAlgorithm,
		wire.CodeTokenUnknownKey, wire.CodeTokenSignature, wire.CodeTokenExpired,
		wire.CodeTokenNotYetValid, wire.CodeRoomMismatch, wire.CodeVersion,
		wire.CodePermissionDenied:
		return true
	}
	return false
}
