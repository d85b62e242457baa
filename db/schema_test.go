package db

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"fiberauth/db/dbtest"
)

// schema is what must match between the engines: tables with their
// columns, unique constraints by their columns, and indexes by name.
type schema map[string]string

// bookkeeping tables belong to the migration tool, not to the product.
var bookkeeping = map[string]bool{"goose_db_version": true, "migration_lock": true}

func sqliteSchema(t *testing.T, s *Store) schema {
	ctx := context.Background()
	out := schema{}
	rows, err := s.w.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		if !bookkeeping[n] {
			tables = append(tables, n)
		}
	}
	rows.Close()
	for _, table := range tables {
		var cols []string
		r, _ := s.w.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
		for r.Next() {
			var c string
			r.Scan(&c)
			cols = append(cols, c)
		}
		r.Close()
		sort.Strings(cols)
		out["table "+table] = strings.Join(cols, ",")
		r, _ = s.w.QueryContext(ctx, `SELECT name, "unique", origin FROM pragma_index_list(?)`, table)
		type idx struct {
			name, origin string
			unique       bool
		}
		var list []idx
		for r.Next() {
			var i idx
			r.Scan(&i.name, &i.unique, &i.origin)
			list = append(list, i)
		}
		r.Close()
		for _, i := range list {
			if i.origin == "pk" {
				continue
			}
			var cols []string
			ir, _ := s.w.QueryContext(ctx, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, i.name)
			for ir.Next() {
				var c string
				ir.Scan(&c)
				cols = append(cols, c)
			}
			ir.Close()
			if i.origin == "u" {
				out[fmt.Sprintf("unique %s(%s)", table, strings.Join(cols, ","))] = "constraint"
			} else {
				out["index "+i.name] = fmt.Sprintf("%s(%s) unique=%v", table, strings.Join(cols, ","), i.unique)
			}
		}
	}
	return out
}

func postgresSchema(t *testing.T, s *Store) schema {
	ctx := context.Background()
	out := schema{}
	rows, err := s.w.QueryContext(ctx, `SELECT table_name, string_agg(column_name, ',' ORDER BY column_name)
		FROM information_schema.columns WHERE table_schema = current_schema() GROUP BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, cols string
		rows.Scan(&table, &cols)
		if !bookkeeping[table] {
			out["table "+table] = cols
		}
	}
	rows.Close()
	rows, err = s.w.QueryContext(ctx, `SELECT i.relname, t.relname, ix.indisunique, ix.indisprimary,
			EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid AND c.contype = 'u'),
			(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum)
		FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, table, cols string
		var unique, primary, constraint bool
		rows.Scan(&name, &table, &unique, &primary, &constraint, &cols)
		switch {
		case bookkeeping[table] || primary:
		case constraint:
			out[fmt.Sprintf("unique %s(%s)", table, cols)] = "constraint"
		default:
			out["index "+name] = fmt.Sprintf("%s(%s) unique=%v", table, cols, unique)
		}
	}
	rows.Close()
	return out
}

// Both engines' migrations end at equivalent schemas: the same tables and
// columns, the same unique constraints, the same indexes by name.
func TestSchemasEquivalent(t *testing.T) {
	lite := sqliteSchema(t, mustOpen(t, sqliteOptions(t)))
	pg := postgresSchema(t, mustOpen(t, Options{URL: dbtest.URL(t)}))
	keys := map[string]bool{}
	for k := range lite {
		keys[k] = true
	}
	for k := range pg {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if lite[k] != pg[k] {
			t.Errorf("%s:\n  sqlite:   %q\n  postgres: %q", k, lite[k], pg[k])
		}
	}
	if len(lite) < 10 {
		t.Errorf("only %d schema items read from SQLite: the reader is broken", len(lite))
	}
}
