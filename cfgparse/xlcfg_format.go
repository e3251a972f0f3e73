package cfgparse

import (
	"strconv"
	"strings"
)

// Format renders c as xl config text that parses back to the same settings
// (names, operators, values and number-ness; positions differ). Each
// statement is written as it was: `name += operand` for additions, so the
// joined values come out the same on re-parse.
func (c *Config) Format() string {
	var b strings.Builder
	for _, s := range c.Settings {
		b.WriteString(s.Name)
		v := s.Value
		if s.Append {
			b.WriteString(" += ")
			if s.Operand != nil {
				v = s.Operand
			}
		} else {
			b.WriteString(" = ")
		}
		formatValue(&b, v)
		b.WriteByte('\n')
	}
	return b.String()
}

func formatValue(b *strings.Builder, v *Value) {
	if v.Kind == ValueList {
		b.WriteByte('[')
		for i, it := range v.List {
			if i > 0 {
				b.WriteString(", ")
			}
			formatValue(b, it)
		}
		b.WriteByte(']')
		return
	}
	if v.Number && isNumberToken(v.Str) {
		b.WriteString(v.Str)
		return
	}
	b.WriteString(QuoteString(v.Str))
}

func isNumberToken(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNumberChar(s[i]) {
			return false
		}
	}
	return true
}

// QuoteString quotes s for an xl config so that libxlutil reads back
// exactly s: single quotes, with \\, \' and the newline escaped (the only
// bytes a quoted string can't hold raw). s must not contain NUL: no xl
// string can.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Dump is a stable, position-annotated rendering of c for golden tests and
// debugging: one line per setting, list items indented, strings in Go
// syntax, numbers bare, each value followed by @line:col.
func (c *Config) Dump() string {
	var b strings.Builder
	for _, s := range c.Settings {
		b.WriteString(strconv.Itoa(s.Pos.Line) + ":" + strconv.Itoa(s.Pos.Col) + " " + s.Name)
		if s.Append {
			b.WriteString(" += ")
			dumpValue(&b, s.Operand, 1)
			b.WriteString("\n  => ")
		} else {
			b.WriteString(" = ")
		}
		dumpValue(&b, s.Value, 1)
		b.WriteByte('\n')
	}
	return b.String()
}

func dumpValue(b *strings.Builder, v *Value, depth int) {
	at := " @" + strconv.Itoa(v.Pos.Line) + ":" + strconv.Itoa(v.Pos.Col)
	if v.Kind == ValueList {
		if len(v.List) == 0 {
			b.WriteString("[]" + at)
			return
		}
		b.WriteString("[" + at + "\n")
		for _, it := range v.List {
			b.WriteString(strings.Repeat("  ", depth+1))
			dumpValue(b, it, depth+1)
			b.WriteByte('\n')
		}
		b.WriteString(strings.Repeat("  ", depth) + "]")
		return
	}
	if v.Number {
		b.WriteString("number " + v.Str + at)
		return
	}
	b.WriteString(strconv.Quote(v.Str) + at)
}
