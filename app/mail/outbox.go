package mail

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"fiberauth/app/metrics"
	"fiberauth/db"
)

// The outbox keeps every message in the database (db/outbox.go) from Send
// until it is sent or given up, so that none is lost when a process stops,
// crashes or is killed.
//
// Every instance runs a dispatcher with two senders. A sender takes a
// message under a claim: one atomic statement marks the due messages that
// nobody holds with the instance's random id and the end of a lease
// (Config.Lease, longer than a delivery may take), so that of several
// instances only one gets each message. After the attempt, the sender
// deletes the message (sent, or given up) or gives it back with its count
// of attempts and the time of the next, each only if its claim still
// holds. A claim left by a process that died is taken over when its lease
// runs out.
//
// Delivery is exactly once but at one point: a process killed after the
// mail server accepted a message and before the message's row was deleted
// (or a database unreachable at that moment) leaves the row claimed, and
// once the lease runs out another sender sends it again (at least once
// there). It keeps its Message-ID and Date, so a
// reader's mail program may recognise the copy. Nothing queued is ever
// lost.

// Timing of the dispatcher.
const (
	// senders is how many deliveries an instance runs at once, so that a
	// slow server does not hold every message behind one.
	senders = 2
	// pollInterval is how often a dispatcher looks for due messages that
	// it was not told about (queued by another instance, or due after a
	// retry's wait) and refreshes the cached queue depth.
	pollInterval = time.Second
	// dbTimeout bounds each of the outbox's statements.
	dbTimeout = 5 * time.Second
	// flushPoll is how often Flush looks at the queue while waiting for
	// work of other instances.
	flushPoll = 20 * time.Millisecond
)

// Outbox is the durable queue of mail and this instance's dispatcher.
type Outbox struct {
	cfg     Config
	store   *db.Store
	send    sender
	log     *slog.Logger
	metrics *metrics.Metrics
	aead    cipher.AEAD
	// owner names this instance in its claims; host ends Message-IDs.
	owner string
	host  string

	// wake asks the dispatcher to look for due messages now.
	wake chan struct{}
	// stop is closed by Close: claim no more.
	stop chan struct{}
	// halt ends when Close's context does: deliveries under way are cut
	// short.
	halt       context.Context
	cancelHalt context.CancelFunc
	// dispatched is closed when the dispatcher has returned.
	dispatched chan struct{}
	// deliveries counts the senders at work.
	deliveries sync.WaitGroup
	busy       atomic.Int32

	// depth is the cached count of queued messages (Pending); moves
	// counts this instance's changes to it, under depthMu, so that a count
	// read from the database while one happened is not stored over it.
	depth   atomic.Int64
	depthMu sync.Mutex
	moves   int64

	mu      sync.Mutex
	backoff time.Duration
	closed  bool
	// changed is closed, and replaced, whenever a delivery here ends.
	changed chan struct{}
}

// New returns a running Outbox that keeps its queue in store. m may be nil.
func New(cfg Config, store *db.Store, log *slog.Logger, m *metrics.Metrics) (*Outbox, error) {
	var snd sender
	if cfg.URL == "" {
		snd = logSender{log: log}
	} else {
		srv, err := ParseURL(cfg.URL)
		if err != nil {
			return nil, err
		}
		cfg.Timeout = timeoutOrDefault(cfg.Timeout)
		snd = &smtpSender{srv: srv, timeout: cfg.Timeout}
	}
	return newOutbox(cfg, store, log, m, snd)
}

func timeoutOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return 30 * time.Second
	}
	return d
}

// newOutbox is New with the sender given (tests).
func newOutbox(cfg Config, store *db.Store, log *slog.Logger, m *metrics.Metrics, snd sender) (*Outbox, error) {
	if cfg.From == "" {
		cfg.From = DefaultFrom
	}
	if err := CheckFrom(cfg.From); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("mail: the outbox needs a store")
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 6
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 10000
	}
	cfg.Timeout = timeoutOrDefault(cfg.Timeout)
	if cfg.Lease <= 0 {
		cfg.Lease = cfg.Timeout + 30*time.Second
	}
	if cfg.Lease <= cfg.Timeout {
		return nil, errors.New("mail: the lease must be longer than the delivery timeout")
	}
	aead, err := newAEAD(cfg.SealKey)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost.localdomain"
	}
	o := &Outbox{cfg: cfg, store: store, send: snd, log: log, metrics: m, aead: aead,
		owner: hex.EncodeToString(id), host: host, backoff: cfg.Backoff,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), dispatched: make(chan struct{}),
		changed: make(chan struct{})}
	o.halt, o.cancelHalt = context.WithCancel(context.Background())
	go o.dispatch()
	return o, nil
}

// Logs reports whether messages are logged rather than sent.
func (o *Outbox) Logs() bool { _, ok := o.send.(logSender); return ok }

// Send stores m in the outbox and returns true once the insert has
// committed: from then on the message will be sent (or given up, and
// logged), whatever happens to this process. It returns false, and logs
// why, when m cannot be built, the outbox is full, or the insert failed.
// It waits for the database only, never for the mail server. After Close
// it still queues (the store permitting), for another instance or the
// next start to send.
func (o *Outbox) Send(m Message) bool {
	fail := func(why string, args ...any) bool {
		o.metrics.Mail(m.Kind, "failed")
		o.log.Error("mail not queued: "+why, append([]any{"kind", m.Kind, "user_id", m.UserID}, args...)...)
		return false
	}
	if o.depth.Load() >= int64(o.cfg.Queue) {
		return fail("the outbox is full", "queued", o.depth.Load())
	}
	now := time.Now()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fail("no random source", "error", err.Error())
	}
	messageID := hex.EncodeToString(id) + "@" + o.host
	if _, err := o.build(m, messageID, now); err != nil {
		return fail("it cannot be built", "error", err.Error())
	}
	body, err := o.seal(m, messageID)
	if err != nil {
		return fail("it cannot be sealed", "error", err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if _, err := o.store.QueueMail(ctx, db.QueuedMail{Kind: m.Kind, UserID: m.UserID, Sealed: body,
		CreatedAt: now, NextAttemptAt: now}); err != nil {
		return fail("the database refused it", "error", err.Error())
	}
	o.moveDepth(1)
	o.kick()
	return true
}

// Pending is how many messages wait to be sent or retried, counting every
// instance's. It is the dispatcher's count, refreshed about once a second
// (and kept up to date between refreshes with this instance's own work),
// so that reading it costs no query.
func (o *Outbox) Pending() int { return int(max(o.depth.Load(), 0)) }

// Flush waits until every message queued before the call, by any instance,
// is sent or given up. A message waiting for a retry is waited for; one
// claimed by a process that died, until its lease runs out. It returns at
// once after Close.
func (o *Outbox) Flush() {
	ctx := context.Background()
	_, newest, err := o.store.MailDepth(ctx)
	if err != nil {
		o.log.Error("mail flush: cannot read the outbox", "error", err.Error())
		return
	}
	o.kick()
	for {
		o.mu.Lock()
		changed, closed := o.changed, o.closed
		o.mu.Unlock()
		if closed && o.busy.Load() == 0 {
			return
		}
		left, err := o.store.MailLeft(ctx, newest)
		if err != nil {
			o.log.Error("mail flush: cannot read the outbox", "error", err.Error())
			return
		}
		if left == 0 {
			o.refreshDepth()
			return
		}
		select {
		case <-changed:
		case <-time.After(flushPoll):
		}
	}
}

// Close stops claiming messages and waits, until ctx ends, for the
// deliveries under way; then it cuts them short. Messages not sent stay in
// the outbox, for another instance or the next start: Close logs how many.
func (o *Outbox) Close(ctx context.Context) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	close(o.stop)
	o.mu.Unlock()
	done := make(chan struct{})
	go func() {
		<-o.dispatched
		o.deliveries.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		o.cancelHalt()
		<-done
	}
	o.cancelHalt()
	o.signal()
	count, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if n, _, err := o.store.MailDepth(count); err == nil && n > 0 {
		o.log.Info("mail remains queued: another instance or the next start will send it", "messages", n)
	}
}

// SetBackoff changes the wait after a first failed attempt (tests make it
// short).
func (o *Outbox) SetBackoff(d time.Duration) {
	o.mu.Lock()
	o.backoff = d
	o.mu.Unlock()
}

// kick wakes the dispatcher, unless it is already due to look.
func (o *Outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// signal tells Flush that a delivery ended.
func (o *Outbox) signal() {
	o.mu.Lock()
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// dispatch claims due messages for the free senders whenever it is woken
// (by Send, by the end of a delivery, by a retry falling due) and at least
// once a second, until Close.
func (o *Outbox) dispatch() {
	defer close(o.dispatched)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var counted time.Time
	failing := false
	for {
		select {
		case <-o.stop:
			return
		default:
		}
		if time.Since(counted) >= pollInterval {
			o.refreshDepth()
			counted = time.Now()
		}
		if free := senders - int(o.busy.Load()); free > 0 {
			ctx, cancel := context.WithTimeout(o.halt, dbTimeout)
			batch, err := o.store.ClaimMail(ctx, o.owner, time.Now(), o.cfg.Lease, free)
			cancel()
			switch {
			case err != nil && !failing:
				failing = true
				o.log.Error("mail: cannot read the outbox; will try again", "error", err.Error())
			case err == nil && failing:
				failing = false
				o.log.Info("mail: the outbox can be read again")
			}
			for _, m := range batch {
				o.busy.Add(1)
				o.deliveries.Add(1)
				go o.deliver(m)
			}
		}
		timer.Reset(pollInterval)
		select {
		case <-o.stop:
			return
		case <-o.wake:
		case <-timer.C:
		}
	}
}

// refreshDepth counts the queue for Pending; a count read while this
// instance queued or removed a message is not stored (it may predate
// that).
func (o *Outbox) refreshDepth() { o.refreshDepthWith(nil) }

// refreshDepthWith is refreshDepth running afterCount (tests) between
// reading the count and storing it.
func (o *Outbox) refreshDepthWith(afterCount func()) {
	ctx, cancel := context.WithTimeout(o.halt, dbTimeout)
	defer cancel()
	o.depthMu.Lock()
	before := o.moves
	o.depthMu.Unlock()
	if n, _, err := o.store.MailDepth(ctx); err == nil {
		if afterCount != nil {
			afterCount()
		}
		o.depthMu.Lock()
		if o.moves == before {
			o.depth.Store(int64(n))
		}
		o.depthMu.Unlock()
	}
}

// moveDepth changes the cached count by d.
func (o *Outbox) moveDepth(d int64) {
	o.depthMu.Lock()
	o.moves++
	o.depth.Add(d)
	o.depthMu.Unlock()
}

// wait is how long to wait after the attempt-th failure.
func (o *Outbox) wait(attempt int) time.Duration {
	o.mu.Lock()
	d := o.backoff
	o.mu.Unlock()
	for i := 1; i < attempt && d < o.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, o.cfg.MaxBackoff)
}

// deliver makes one attempt at a claimed message, then deletes it (sent,
// or given up) or gives it back for a retry.
func (o *Outbox) deliver(q db.QueuedMail) {
	defer func() {
		o.busy.Add(-1)
		o.deliveries.Done()
		o.signal()
		o.kick()
	}()
	attempt := q.Attempts + 1
	log := o.log.With("kind", q.Kind, "user_id", q.UserID, "id", q.ID)
	m, messageID, err := o.open(q.Kind, q.UserID, q.Sealed)
	if err != nil {
		o.giveUp(q, log, attempt, err)
		return
	}
	built, err := o.build(m, messageID, q.CreatedAt)
	if err != nil {
		o.giveUp(q, log, attempt, err)
		return
	}
	ctx, cancel := context.WithTimeout(o.halt, o.cfg.Timeout)
	err = o.send.send(ctx, built, m)
	cancel()
	switch {
	case err == nil:
		o.metrics.Mail(q.Kind, "sent")
		log.Info("mail sent", "attempt", attempt)
		o.remove(q, log, "sent")
	case o.halt.Err() != nil:
		// Cut short by a shutdown: no attempt counted, and the message is
		// given back at once rather than at the end of the lease.
		log.Warn("mail not sent: shutting down; it stays queued", "error", err.Error())
		o.retry(q, log, q.Attempts, time.Now())
	case attempt >= o.cfg.Attempts || permanent(err):
		o.giveUp(q, log, attempt, err)
	default:
		wait := o.wait(attempt)
		o.metrics.Mail(q.Kind, "retried")
		if o.retry(q, log, attempt, time.Now().Add(wait)) {
			log.Warn("mail delivery failed; will retry", "attempt", attempt, "retry_in", wait.String(), "error", err.Error())
			time.AfterFunc(wait, o.kick)
		}
	}
}

// giveUp logs and counts a message that will not be sent, and deletes it.
func (o *Outbox) giveUp(q db.QueuedMail, log *slog.Logger, attempts int, err error) {
	o.metrics.Mail(q.Kind, "failed")
	log.Error("mail not sent", "attempts", attempts, "error", err.Error())
	o.remove(q, log, "given up")
}

// remove deletes a message sent or given up, if this claim still holds it.
func (o *Outbox) remove(q db.QueuedMail, log *slog.Logger, outcome string) {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	ok, err := o.store.DoneMail(ctx, q.ID, q.Claim)
	switch {
	case err != nil:
		log.Error("mail "+outcome+" but still queued: it will be tried again when its lease runs out", "error", err.Error())
	case !ok:
		log.Warn("mail " + outcome + " after its lease ran out: another instance may send it again")
	default:
		o.moveDepth(-1)
	}
}

// retry gives a message back with attempts failed attempts, the next not
// before next. It reports whether the claim still held.
func (o *Outbox) retry(q db.QueuedMail, log *slog.Logger, attempts int, next time.Time) bool {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	ok, err := o.store.RetryMail(ctx, q.ID, q.Claim, attempts, next)
	switch {
	case err != nil:
		log.Error("mail not sent and not given back: it will be retried when its lease runs out", "error", err.Error())
	case !ok:
		log.Warn("mail not sent, and its lease ran out: another instance has it")
	}
	return ok && err == nil
}
