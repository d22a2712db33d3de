package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// run is the client's supervisor: when a session ends it finishes the
// client (Close, Leave, replaced, a permanent error, reconnecting disabled
// or given up) or reconnects, tearing the old session down first.
func (c *Client) run(s *session) {
	defer close(c.runDone)
	for {
		select {
		case <-s.done:
		case <-c.closing.Done():
		}
		if c.stopping() {
			s.close()
			c.detach(s)
			c.finish(ErrClosed, true)
			return
		}
		cause := s.err()
		s.teardown()
		c.detach(s)
		switch {
		case permanent(cause):
			c.log.Info("client: disconnected", "err", cause)
			c.finish(cause, false)
			return
		case c.opts.Reconnect.Disabled:
			c.log.Info("client: disconnected", "err", cause)
			c.finish(fmt.Errorf("%w: %w", ErrDisconnected, cause), false)
			return
		}
		c.log.Info("client: reconnecting", "err", cause)
		if f := c.opts.Handlers.Reconnecting; f != nil {
			c.emit(func() { f(cause) })
		}
		if s = c.reconnect(cause); s == nil {
			return
		}
		c.log.Info("client: reconnected")
		if f := c.opts.Handlers.Reconnected; f != nil {
			c.emit(f)
		}
	}
}

// stopping reports whether Close or Leave was called.
func (c *Client) stopping() bool {
	select {
	case <-c.closing.Done():
		return true
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaving
}

// detach forgets an ended session: publications lose sender and SID, held
// tracks go.
func (c *Client) detach(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
	}
	for _, p := range c.pubs {
		if p.sess == s {
			p.sender, p.sess, p.negotiated = nil, nil, false
		}
		if p.info.SID != "" {
			p.info = wire.TrackInfo{}
			p.notifyLocked()
		}
	}
	c.self.Tracks = nil
	clear(c.held)
}

// finish ends the client with err; Disconnected(err) is its last event.
func (c *Client) finish(err error, dropPending bool) {
	c.mu.Lock()
	c.finished = true
	c.err = err
	c.sess = nil
	for _, p := range c.pubs {
		p.notifyLocked()
	}
	c.mu.Unlock()
	c.stop()
	f := c.opts.Handlers.Disconnected
	c.events.Finish(func() {
		if f != nil {
			f(err)
		}
	}, dropPending)
}

// reconnect dials until a session is joined and restored, and returns it;
// or finishes the client and returns nil.
func (c *Client) reconnect(cause error) *session {
	policy := c.opts.Reconnect
	backoff := policy.InitialBackoff
	lastErr := cause
	for attempt := 1; ; attempt++ {
		if policy.MaxAttempts > 0 && attempt > policy.MaxAttempts {
			err := fmt.Errorf("%w: gave up after %d attempts: %w", ErrDisconnected, policy.MaxAttempts, lastErr)
			c.log.Info("client: disconnected", "err", err)
			c.finish(err, false)
			return nil
		}
		// Jitter spreads the clients of a restarted node over the wait.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, policy.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.closing.Done():
			t.Stop()
			c.finish(ErrClosed, true)
			return nil
		}
		if c.stopping() {
			c.finish(ErrClosed, true)
			return nil
		}

		ctx, cancel := context.WithTimeout(c.closing, joinTimeout)
		s, err := c.attempt(ctx)
		cancel()
		if err == nil {
			return s
		}
		lastErr = err
		if c.stopping() {
			c.finish(ErrClosed, true)
			return nil
		}
		if permanent(err) {
			c.log.Info("client: disconnected", "err", err)
			c.finish(err, false)
			return nil
		}
		c.log.Info("client: reconnect attempt failed", "attempt", attempt, "err", err)
	}
}

// attempt dials, joins, installs the session and restores publications and
// manual (un)subscriptions; a session that drops meanwhile fails it.
func (c *Client) attempt(ctx context.Context) (*session, error) {
	s, joined, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.finished || c.leaving {
		c.mu.Unlock()
		s.teardown()
		return nil, ErrClosed
	}
	c.installLocked(s, joined)
	if len(c.pubs) > 0 {
		if err := c.canPublishLocked(0); err != nil {
			// The grant or limit changed: the publications end here.
			var se *ServerError
			errors.As(err, &se)
			for len(c.pubs) > 0 {
				c.removePublicationLocked(c.pubs[0])
			}
			if f := c.opts.Handlers.Error; f != nil {
				c.emit(func() { f(se) })
			}
		}
	}
	var attachErr error
	for _, p := range c.pubs {
		if err := s.attachLocked(p); err != nil {
			attachErr = err
			break
		}
	}
	subs := sortedKeys(c.subscribed)
	var unsubs []string
	if c.autoSubscribe() {
		unsubs = sortedKeys(c.unsubscribed)
	}
	republish := len(c.pubs) > 0
	c.mu.Unlock()
	s.start()

	err = attachErr
	if err == nil && republish {
		err = s.negotiate(ctx)
	}
	if err == nil {
		err = c.restoreSubscriptions(ctx, s, wire.TypeSubscribe, subs)
	}
	if err == nil {
		err = c.restoreSubscriptions(ctx, s, wire.TypeUnsubscribe, unsubs)
	}
	if err == nil {
		return s, nil
	}
	var se *ServerError
	if errors.As(err, &se) && !se.Fatal && !s.isFailed() {
		// Part of the restore was refused; the session itself is fine.
		c.log.Warn("client: restoring after reconnect", "err", err)
		c.onServerError(s, se)
		return s, nil
	}
	s.fail(fmt.Errorf("client: restore after reconnect: %w", err))
	cause := s.err()
	s.teardown()
	c.detach(s)
	return nil, cause
}

// restoreSubscriptions re-sends (un)subscribe per SID, forgetting gone tracks.
func (c *Client) restoreSubscriptions(ctx context.Context, s *session, typ string, sids []string) error {
	for _, sid := range sids {
		id := c.nextID()
		_, err := s.request(ctx, id, wire.Subscribe{Type: typ, ID: id, TrackSIDs: []string{sid}})
		var se *ServerError
		if errors.As(err, &se) && se.Code == wire.CodeUnknownTrack {
			c.mu.Lock()
			delete(c.subscribed, sid)
			delete(c.unsubscribed, sid)
			c.mu.Unlock()
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
