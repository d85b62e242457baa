package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// refreshServer serves POST /token doing what a refresh grant cannot do
// without, and nothing else: it reads the presented token, replaces its
// hash by the next one's in one durable conditional update of one row,
// found by its key (a token already replaced changes nothing and is
// refused), signs a new
// access token with Ed25519, and answers JSON. It first makes chains rows
// and writes their tokens to out, one per line, for the load script.
func refreshServer(addr, target string, chains int, out string) error {
	db, pg, err := openDurable(target, 8)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`DROP TABLE IF EXISTS baseline_chains`); err != nil {
		return err
	}
	if _, err := db.Exec(`CREATE TABLE baseline_chains (id BIGINT PRIMARY KEY, token_hash TEXT NOT NULL, used_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	defer db.Exec(`DROP TABLE baseline_chains`)
	q := func(s string) string {
		if !pg {
			return s
		}
		for i := 1; strings.Contains(s, "?"); i++ {
			s = strings.Replace(s, "?", "$"+strconv.Itoa(i), 1)
		}
		return s
	}
	insert, update := q(`INSERT INTO baseline_chains (id, token_hash, used_at) VALUES (?, ?, ?)`),
		q(`UPDATE baseline_chains SET token_hash = ?, used_at = ? WHERE id = ? AND token_hash = ?`)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := 0; i < chains; i++ {
		tok := newToken(int64(i))
		if _, err := db.Exec(insert, i, hash(tok), time.Now().Unix()); err != nil {
			return err
		}
		fmt.Fprintln(w, tok)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()

	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"baseline","typ":"JWT"}`))
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/token", func(c *fiber.Ctx) error {
		presented := c.FormValue("refresh_token")
		idPart, _, _ := strings.Cut(presented, ".")
		id, err := strconv.ParseInt(idPart, 10, 64)
		if err != nil {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "invalid_grant"})
		}
		next := newToken(id)
		now := time.Now()
		res, err := db.ExecContext(c.UserContext(), update, hash(next), now.Unix(), id, hash(presented))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "invalid_grant"})
		}
		claims := fmt.Sprintf(`{"iss":"http://baseline","sub":"loaduser","sid":"%s","scope":"basic","iat":%d,"exp":%d}`,
			next[len(next)-16:], now.Unix(), now.Add(30*time.Minute).Unix())
		signing := header + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
		access := signing + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signing)))
		return c.JSON(fiber.Map{"access_token": access, "token_type": "bearer", "expires_in": 1800,
			"refresh_token": next, "scope": "basic"})
	})
	return app.Listen(addr)
}

// newToken is a new token of chain id: its id, a dot, 32 random bytes.
func newToken(id int64) string {
	b := make([]byte, 32)
	rand.Read(b)
	return strconv.FormatInt(id, 10) + "." + base64.RawURLEncoding.EncodeToString(b)
}

func hash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// openDurable opens target as the service opens its database: SQLite with
// synchronous=FULL, WAL and one writing connection, or PostgreSQL with
// conns connections. pg says which.
func openDurable(target string, conns int) (*sql.DB, bool, error) {
	pg := strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
	var db *sql.DB
	var err error
	if pg {
		db, err = sql.Open("pgx", target)
	} else {
		db, err = sql.Open("sqlite3", "file:"+target+"?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_txlock=immediate")
		conns = 1
	}
	if err != nil {
		return nil, false, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, pg, nil
}
