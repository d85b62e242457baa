package app

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Request lines are gathered and written in batches: at most
// requestLogDelay after the first one waits, or at once when
// requestLogBatch bytes wait. A busy server then pays one write to its
// terminal or file per batch instead of one per request.
const (
	requestLogDelay = 50 * time.Millisecond
	requestLogBatch = 32 << 10
)

// logSink is where the service's log lines go. Request lines wait in a
// batch (request); every other line is written at once, after the request
// lines waiting before it, so that the order of lines stays the order of
// events.
type logSink struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	timer *time.Timer
	armed bool
}

func newLogSink(w io.Writer) *logSink {
	l := &logSink{w: w}
	l.timer = time.AfterFunc(time.Hour, l.Flush)
	l.timer.Stop()
	return l
}

// Write writes p at once, after the request lines waiting.
func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	return l.w.Write(p)
}

// request adds one request line to the batch.
func (l *logSink) request(line []byte) {
	l.mu.Lock()
	l.buf = append(l.buf, line...)
	if len(l.buf) >= requestLogBatch {
		l.flushLocked()
	} else if !l.armed {
		l.armed = true
		l.timer.Reset(requestLogDelay)
	}
	l.mu.Unlock()
}

// Flush writes the request lines waiting.
func (l *logSink) Flush() {
	l.mu.Lock()
	l.flushLocked()
	l.mu.Unlock()
}

func (l *logSink) flushLocked() {
	if len(l.buf) > 0 {
		l.w.Write(l.buf)
		l.buf = l.buf[:0]
	}
	if l.armed {
		l.timer.Stop()
		l.armed = false
	}
}

// sinkHandler is the JSON handler of a logger that writes to a logSink:
// it lets the server find the sink, to write its request lines there
// itself (appendRequestLine) instead of through slog.
type sinkHandler struct {
	*slog.JSONHandler
	sink *logSink
}

// sinkFromLogger returns the sink of a logger made by newLogger in JSON,
// or nil.
func sinkFromLogger(log *slog.Logger) *logSink {
	if h, ok := log.Handler().(*sinkHandler); ok {
		return h.sink
	}
	return nil
}

// requestLine is what one request line says.
type requestLine struct {
	Time     time.Time
	Level    slog.Level
	ID       []byte
	Method   string
	Route    string
	Path     string
	Status   int
	Duration time.Duration
	IP       string
	Addr     netip.Addr // the client's address, when IP is not set
	UserID   int64      // 0: no signed-in user
}

// appendRequestLine appends r as slog's JSON handler writes it (the same
// keys, order, escaping and number forms), with a newline.
func appendRequestLine(b []byte, r *requestLine) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, r.Level.String()...)
	b = append(b, `","msg":"request","request_id":`...)
	b = appendJSONBytes(b, r.ID, escapeLog)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method, escapeLog)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, r.Route, escapeLog)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.Path, escapeLog)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	b = append(b, `,"ip":`...)
	if r.IP == "" && r.Addr.IsValid() {
		b = append(b, '"')
		b = r.Addr.AppendTo(b)
		b = append(b, '"')
	} else {
		b = appendJSONString(b, r.IP, escapeLog)
	}
	if r.UserID != 0 {
		b = append(b, `,"user_id":`...)
		b = strconv.AppendInt(b, r.UserID, 10)
	}
	return append(b, "}\n"...)
}

// logRequestSlow writes r through slog, for a logger whose sink the
// server cannot reach (text format, or another handler).
func logRequestSlow(log *slog.Logger, r *requestLine) {
	attrs := []slog.Attr{
		slog.String("request_id", string(r.ID)),
		slog.String("method", r.Method),
		slog.String("route", r.Route),
		slog.String("path", r.Path),
		slog.Int("status", r.Status),
		slog.Duration("duration", r.Duration),
		slog.String("ip", r.IP),
	}
	if r.UserID != 0 {
		attrs = append(attrs, slog.Int64("user_id", r.UserID))
	}
	log.LogAttrs(context.Background(), r.Level, "request", attrs...)
}

const hexDigits = "0123456789abcdef"

// escaping is how appendJSONString escapes: as slog's JSON handler
// (escapeLog) or as encoding/json by default (escapeAPI: <, > and & as
// well, and \b and \f in short form).
type escaping bool

const (
	escapeLog escaping = false
	escapeAPI escaping = true
)

// appendJSONString appends s as a JSON string escaped as e says: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by
// U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string, e escaping) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (e == escapeLog || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b', '\f':
				if e == escapeAPI {
					short := byte('b')
					if c == '\f' {
						short = 'f'
					}
					b = append(b, '\\', short)
					break
				}
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONBytes is appendJSONString for bytes.
func appendJSONBytes(b, s []byte, e escaping) []byte {
	return appendJSONString(b, unsafe.String(unsafe.SliceData(s), len(s)), e)
}
