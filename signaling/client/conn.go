package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

type outgoing struct {
	data    []byte
	written chan error // optional, cap 1
}

// send queues a message for the writer.
func (s *session) send(msg any) error {
	return s.enqueue(msg, nil)
}

func (s *session) enqueue(msg any, written chan error) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("client: encode message: %w", err)
	}
	if s.maxMessage > 0 && len(b) > s.maxMessage {
		return fmt.Errorf("%w: message of %d bytes, the server accepts at most %d",
			ErrMessageTooLarge, len(b), s.maxMessage)
	}
	s.mu.Lock()
	if s.failed {
		err := s.requestErrLocked()
		s.mu.Unlock()
		return err
	}
	if len(s.queue) >= maxQueuedMessages {
		s.mu.Unlock()
		s.fail(errors.New("client: server is not reading: send queue full"))
		return s.requestErr()
	}
	s.queue = append(s.queue, outgoing{data: b, written: written})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) requestErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requestErrLocked()
}

// sendSync sends msg and waits until it is written.
func (s *session) sendSync(ctx context.Context, msg any) error {
	written := make(chan error, 1)
	if err := s.enqueue(msg, written); err != nil {
		return err
	}
	select {
	case err := <-written:
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDisconnected, err)
		}
		return nil
	case <-s.done:
		return s.requestErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *session) writeLoop() {
	for {
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
		for {
			s.mu.Lock()
			if len(s.queue) == 0 || s.failed {
				s.mu.Unlock()
				break
			}
			m := s.queue[0]
			s.queue[0] = outgoing{}
			s.queue = s.queue[1:]
			s.mu.Unlock()

			if s.limiter != nil {
				if err := s.limiter.Wait(s.ctx); err != nil {
					if m.written != nil {
						m.written <- err
					}
					return
				}
			}
			ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
			err := s.ws.Write(ctx, websocket.MessageText, m.data)
			cancel()
			if m.written != nil {
				m.written <- err
			}
			if err != nil {
				s.fail(fmt.Errorf("client: write: %w", err))
				return
			}
		}
	}
}

func (s *session) keepalive() {
	t := time.NewTicker(keepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, keepaliveInterval)
		err := s.ws.Ping(ctx)
		cancel()
		if err != nil {
			s.fail(fmt.Errorf("client: keepalive: %w", err))
			return
		}
	}
}

func (s *session) readLoop() {
	for {
		typ, b, err := s.ws.Read(s.ctx)
		if err != nil {
			s.fail(fmt.Errorf("client: read: %w", err))
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		if err := s.handle(b); err != nil {
			s.log.Warn("client: message from server ignored", "err", err)
		}
	}
}
