package mail

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strconv"
)

// sealed is what the outbox stores of a message, encrypted: everything a
// reader of the database could use (the recipient, and the subject and
// parts, which carry one-time codes in clear), and the Message-ID fixed
// when the message was queued.
type sealed struct {
	To        string `json:"to"`
	Subject   string `json:"subject"`
	Text      string `json:"text"`
	HTML      string `json:"html"`
	MessageID string `json:"message_id"`
}

// sealVersion prefixes every sealed message, so that a later format can be
// told apart.
const sealVersion = 1

// newAEAD returns AES-256-GCM under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("mail: the seal key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealData binds a sealed message to the kind and account stored beside
// it, so that a row's content cannot be passed off as another's.
func sealData(kind string, userID int64) []byte {
	return []byte("fiberauth outbox v1\x00" + kind + "\x00" + strconv.FormatInt(userID, 10))
}

// seal encrypts m with its Message-ID: a version byte, a random nonce,
// then the ciphertext.
func (o *Outbox) seal(m Message, messageID string) ([]byte, error) {
	plain, err := json.Marshal(sealed{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, MessageID: messageID})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+o.aead.NonceSize(), 1+o.aead.NonceSize()+len(plain)+o.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return o.aead.Seal(out, out[1:], plain, sealData(m.Kind, m.UserID)), nil
}

// errUnreadable means a stored message cannot be opened: it was sealed
// under another key (the service secret changed) or is damaged.
var errUnreadable = errors.New("the stored message cannot be read (sealed under another key, or damaged)")

// open decrypts what seal made for a message of kind and userID.
func (o *Outbox) open(kind string, userID int64, b []byte) (Message, string, error) {
	n := o.aead.NonceSize()
	if len(b) < 1+n || b[0] != sealVersion {
		return Message{}, "", errUnreadable
	}
	plain, err := o.aead.Open(nil, b[1:1+n], b[1+n:], sealData(kind, userID))
	if err != nil {
		return Message{}, "", errUnreadable
	}
	var s sealed
	if err := json.Unmarshal(plain, &s); err != nil {
		return Message{}, "", errUnreadable
	}
	return Message{Kind: kind, UserID: userID, To: s.To, Subject: s.Subject, Text: s.Text, HTML: s.HTML}, s.MessageID, nil
}
