// Package migrations holds the database schema as numbered SQL files, embedded
// in the binary so that a deployment is one file. store.Migrate applies them.
package migrations

import "embed"

// FS holds every migration file at its root, named NNN_description.sql. Files
// are applied in lexical order and never edited once released: a change to the
// schema is a new file.
//
//go:embed *.sql
var FS embed.FS
