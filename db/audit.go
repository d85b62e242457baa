package db

import (
	"context"
	"time"
)

// Audit is one administrator's action.
type Audit struct {
	ID         int64
	At         time.Time
	AdminID    int64
	AdminName  string
	Action     string
	TargetID   int64
	TargetName string
	Detail     string
	IP         string
}

// AddAudit records an administrator's action.
func (s *Store) AddAudit(ctx context.Context, a Audit) error {
	_, err := s.exec(ctx, s.w, `INSERT INTO admin_audit (at, admin_id, admin_name, action, target_id, target_name, detail, ip)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, unix(a.At), a.AdminID, a.AdminName, a.Action, a.TargetID, a.TargetName, a.Detail, a.IP)
	return err
}

// ListAudit returns the latest limit audit entries from offset, newest
// first, and how many there are in all.
func (s *Store) ListAudit(ctx context.Context, offset, limit int) ([]Audit, int, error) {
	var total int
	if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM admin_audit`).Scan(&total); err != nil {
		return nil, 0, s.wrap(err)
	}
	rows, err := s.query(ctx, s.r, `SELECT id, at, admin_id, admin_name, action, target_id, target_name, detail, ip
		FROM admin_audit ORDER BY id DESC LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Audit
	for rows.Next() {
		var a Audit
		var at int64
		if err := rows.Scan(&a.ID, &at, &a.AdminID, &a.AdminName, &a.Action, &a.TargetID, &a.TargetName, &a.Detail, &a.IP); err != nil {
			return nil, 0, err
		}
		a.At = fromUnix(at)
		out = append(out, a)
	}
	return out, total, s.wrap(rows.Err())
}
