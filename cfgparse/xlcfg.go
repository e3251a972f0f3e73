package cfgparse

// The xl.cfg grammar, exactly as Xen 4.17's libxlutil reads it
// (tools/libs/util/libxlu_cfg_l.l, libxlu_cfg_y.y, libxlu_cfg.c).
//
// Lexical rules (flex, longest match, first rule wins a tie):
//
//	IDENT    [a-z][._0-9a-z]*          names are lowercase only
//	NUMBER   [0-9][0-9a-fx]*           kept as text ("0x1f", "1abc", "09")
//	STRING   '...' or "..."            no raw newline inside; \<any> escapes
//	NEWLINE  \n  or  #...\n            a comment is only a comment up to \n
//	, [ ] = += ;                       punctuation
//	[ \t]                              skipped; \r, \f, \v are NOT blanks
//
// Anything else is a lexical error, which swallows the rest of the blank-free
// run ("near `$abc'"). The one exception is flex's end-of-input handling: a
// bad byte that is the very last byte of the input is dropped silently (so
// "x=1\r" and a final "#" without newline are accepted, "x=1\r\n" is not).
//
// Grammar (bison):
//
//	file      : stmts | stmts assignment          last line needs no newline
//	stmt      : assignment endstmt | endstmt | error NEWLINE
//	assignment: IDENT '=' value | IDENT "+=" value
//	endstmt   : NEWLINE | ';'
//	value     : STRING | NUMBER | '[' nlok valuelist ']'
//	valuelist : <empty> | values | values ',' nlok  one trailing comma allowed
//	values    : value nlok | values ',' nlok value nlok
//	nlok      : NEWLINE*                           newlines only inside [ ]
//
// Lists nest. Any error (lexical, syntax, bad escape, += type clash) makes
// xlu_cfg_readdata fail; bison's error recovery only lets libxlutil report
// more messages, so this parser stops at the first error, which is the first
// one libxlutil prints.
//
// libxlutil quirks this parser reproduces (each checked against the real
// library by tests/xlutil):
//   - Values are never names: `on_crash = destroy` is a syntax error, and so
//     are negative numbers (`-1`), floats (`1.5`) and anything Python-like.
//   - A number keeps its token text; "09" and "1abc" are fine tokens that
//     only xlu_cfg_get_long rejects. xlu_cfg_get_long is strtol(s, &end, 0)
//     on that text (0x hex, 0 octal, leading C blanks and a sign allowed in
//     quoted strings) and refuses a setting written with +=.
//   - The last statement wins; += joins onto the current value of the name
//     (string + string, list + list; a mix is an error naming the line of
//     the value's last token). += on an unset name just stores the operand.
//   - \x escapes are always rejected; octal escapes are consumed but produce
//     no byte at all (see dequote); \0 is therefore not a way to write NUL.
//   - CRLF files are rejected (\r is not a blank), uppercase names are
//     rejected, a comment on a last line without newline is rejected, but a
//     single bad byte that is the very last byte of the input is ignored.
//   - NUL bytes: a lexical error outside strings, fine inside comments;
//     inside a quoted string libxlutil aborts on an assert (or truncates), so
//     we reject it with ErrNULInString: the one deliberate difference.
//   - Error lines: at a newline token libxlutil names the line before; at end
//     of input, the line of the last token. SyntaxError.XLULine models this.
//
// Limits (deliberate differences, ErrLimit; xl configs are a few KiB with
// lists two deep): at most MaxConfigSize bytes, lists nested at most
// MaxListDepth deep (the parser recurses once per level: a million '['
// overflowed the Go stack and killed the process, where libxlutil's bison
// stack fails cleanly near depth 4000), at most MaxValues values. A +=
// chain shares its list's backing array and its string's buffer with the
// statements before it, so memory stays proportional to the input (each
// += copied everything so far: 300 KB of them took 463 MB).

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/govscsi/govscsi/internal/opfile"
)

// Pos is a position in a config file. Line and Col are 1-based; Col counts
// bytes (a tab is one column).
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File // the whole file (a size limit)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// ValueKind tells a string (or number) value from a list.
type ValueKind int

const (
	// ValueString is a quoted string or a bare number (libxlutil stores both
	// as strings; a number keeps its token text).
	ValueString ValueKind = iota
	// ValueList is a [ ... ] list; its items may be lists themselves.
	ValueList
)

func (k ValueKind) String() string {
	switch k {
	case ValueString:
		return "string"
	case ValueList:
		return "list"
	}
	return fmt.Sprintf("ValueKind(%d)", int(k))
}

// Value is one right-hand side or list item.
type Value struct {
	Kind ValueKind
	Str  string   // ValueString: the dequoted string or the number's text
	List []*Value // ValueList: the items (non-nil, maybe empty)
	Pos  Pos      // where the value starts (the quote, digit or '[')
	// Number is true for a bare NUMBER token (Str is its text, e.g. "0x10").
	Number bool
}

// Setting is one `name = value` or `name += value` statement.
type Setting struct {
	Name string
	// Value is what xlu_cfg_get_* sees for this statement: for += it is the
	// previous value of Name with this statement's operand appended
	// (strings concatenated, list items appended).
	Value  *Value
	Pos    Pos  // of the name
	Append bool // written with +=
	// Operand is the right-hand side as written; for = it is Value itself.
	Operand *Value
}

// Config is a parsed xl config: its statements in file order.
type Config struct {
	File     string
	Settings []*Setting
}

// Sentinel errors; SyntaxError and LookupError unwrap to them (and to the
// errno libxlutil returns in the same case).
var (
	// ErrNotFound: the key is absent (libxlutil's ESRCH).
	ErrNotFound = errors.New("setting not found")
	// ErrSyntax: the file is not valid xl config syntax.
	ErrSyntax = errors.New("xl config syntax error")
	// ErrWrongType: a list where a single value is needed, or vice versa.
	ErrWrongType = errors.New("wrong value type")
	// ErrBadNumber: the value is not a number strtol(3) accepts whole.
	ErrBadNumber = errors.New("not a valid number")
	// ErrNULInString: a NUL byte inside a quoted string. libxlutil's
	// dequoting uses strlen and trips an assert (abort) or truncates the
	// string, so we refuse such input outright (deliberate difference).
	ErrNULInString = errors.New("NUL byte in quoted string")
	// ErrLimit: the config exceeds MaxConfigSize, MaxListDepth or
	// MaxValues (deliberate difference: libxlutil has no such limits
	// short of its bison stack).
	ErrLimit = errors.New("xl config exceeds a parser limit")
)

// Parser limits (see the package comment on ErrLimit).
const (
	MaxConfigSize = opfile.MaxConfigSize
	MaxListDepth  = 64
	MaxValues     = 1 << 16
)

// SyntaxError is a parse failure: where, the offending token as it appears
// in the file, and what is wrong.
type SyntaxError struct {
	Pos   Pos
	Token string // the offending text ("" at end of file, "\n" at a newline)
	Msg   string // full description, naming the token
	// XLULine is the line libxlutil's own message for this error names. It
	// differs from Pos.Line in two cases: at a newline token libxlutil
	// reports the line before it (its lexer and its yyerror both subtract
	// one), and for a += type clash it reports the line of the value's last
	// token.
	XLULine int
	err     error // sentinel for errors.Is
}

func (e *SyntaxError) Error() string { return e.Pos.String() + ": " + e.Msg }

// Unwrap gives ErrSyntax (or a more specific sentinel) and EINVAL, the errno
// xlu_cfg_readdata returns.
func (e *SyntaxError) Unwrap() []error {
	if e.err != nil {
		return []error{e.err, ErrSyntax, syscall.EINVAL}
	}
	return []error{ErrSyntax, syscall.EINVAL}
}

// LookupError is a failed Get*: the key, where it was set (zero if absent),
// and why.
type LookupError struct {
	File  string
	Name  string
	Pos   Pos
	Msg   string
	Errno syscall.Errno // what xlu_cfg_get_* returns: ESRCH, EINVAL, ERANGE
	err   error
}

func (e *LookupError) Error() string {
	if e.Pos.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Unwrap gives the sentinel (ErrNotFound, ErrWrongType, ErrBadNumber) and
// the errno.
func (e *LookupError) Unwrap() []error { return []error{e.err, e.Errno} }

// ParseFile reads and parses path; positions name path. Only a regular file
// of at most MaxConfigSize bytes is read (a FIFO or /dev/zero is refused
// before a byte is read).
func ParseFile(path string) (*Config, error) {
	data, err := opfile.Read("xl config", path, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses data as an xl config; file names it in positions and errors.
// On failure the error is a *SyntaxError.
func Parse(file string, data []byte) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, &SyntaxError{Pos: Pos{File: file}, Msg: fmt.Sprintf("%d bytes, larger than the %d-byte limit for an xl config", len(data), MaxConfigSize), err: ErrLimit}
	}
	p := parser{lx: lexer{file: file, data: data, src: string(data), line: 1}, last: map[string]int{}}
	// Every statement has an '=', so this bounds the settings slice.
	p.cfg = &Config{File: file, Settings: make([]*Setting, 0, min(bytes.Count(data, []byte{'='}), 1024))}
	if err := p.parseFile(); err != nil {
		return nil, err
	}
	return p.cfg, nil
}

// ---- lexer ----

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tNewline // "\n" or "# comment\n"
	tComma
	tLBrack
	tRBrack
	tAssign
	tAppend
	tSemi
)

var tokNames = [...]string{
	tEOF:     "end of file",
	tIdent:   "name",
	tNumber:  "number",
	tString:  "string",
	tNewline: "newline",
	tComma:   "','",
	tLBrack:  "'['",
	tRBrack:  "']'",
	tAssign:  "'='",
	tAppend:  "'+='",
	tSemi:    "';'",
}

type token struct {
	kind       tokKind
	start, end int // byte offsets of the token text in the input
	pos        Pos
	str        string // tString: dequoted; tIdent, tNumber: the text
}

type lexer struct {
	file      string
	data      []byte
	src       string // data as one string: token texts are substrings of it
	off       int
	line      int
	lineStart int
	// lastLine is bison's yylloc.first_line after the last token returned:
	// libxlutil names it for an error at end of input.
	lastLine int
}

func (lx *lexer) pos(off int) Pos {
	return Pos{File: lx.file, Line: lx.line, Col: off - lx.lineStart + 1}
}

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_'
}

func isNumberChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == 'x'
}

// span is the end of the run of bytes of d from i on that in accepts.
func span(d []byte, i int, in func(byte) bool) int {
	for i < len(d) && in(d[i]) {
		i++
	}
	return i
}

func (lx *lexer) next() (token, *SyntaxError) {
	d := lx.data
	for lx.off < len(d) {
		start := lx.off
		c := d[start]
		tok := token{start: start, pos: lx.pos(start)}
		switch {
		case c == ' ' || c == '\t':
			lx.off++
			continue
		case c >= 'a' && c <= 'z':
			lx.off = span(d, start+1, isIdentChar)
			tok.kind, tok.str = tIdent, lx.src[start:lx.off]
		case c >= '0' && c <= '9':
			lx.off = span(d, start+1, isNumberChar)
			tok.kind, tok.str = tNumber, lx.src[start:lx.off]
		case c == ',':
			tok.kind, lx.off = tComma, start+1
		case c == '[':
			tok.kind, lx.off = tLBrack, start+1
		case c == ']':
			tok.kind, lx.off = tRBrack, start+1
		case c == '=':
			tok.kind, lx.off = tAssign, start+1
		case c == ';':
			tok.kind, lx.off = tSemi, start+1
		case c == '+' && start+1 < len(d) && d[start+1] == '=':
			tok.kind, lx.off = tAppend, start+2
		case c == '\n' || c == '#':
			nl := start
			if c == '#' {
				i := bytes.IndexByte(d[start:], '\n')
				if i < 0 {
					// "#.*\n" needs the newline: a comment on the last line
					// without one is a lexical error.
					return lx.lexError(start)
				}
				nl = start + i
			}
			tok.kind = tNewline
			lx.off = nl + 1
			tok.end = lx.off
			lx.lastLine = lx.line
			lx.line++
			lx.lineStart = lx.off
			return tok, nil
		case c == '\'' || c == '"':
			end, ok := scanString(d, start)
			if !ok {
				return lx.lexError(start)
			}
			tok.kind = tString
			lx.off = end
			tok.end = end
			s, err := lx.dequote(start, end)
			if err != nil {
				return tok, err
			}
			tok.str = s
			lx.lastLine = lx.line
			return tok, nil
		default:
			return lx.lexError(start)
		}
		tok.end = lx.off
		lx.lastLine = lx.line
		return tok, nil
	}
	return token{kind: tEOF, start: lx.off, end: lx.off, pos: lx.pos(lx.off)}, nil
}

// scanString finds the end (exclusive) of the quoted string starting at
// d[start]: '([^'\\\n]|\\.)*' with "." not matching a newline.
func scanString(d []byte, start int) (int, bool) {
	q := d[start]
	for i := start + 1; i < len(d); {
		switch d[i] {
		case q:
			return i + 1, true
		case '\n':
			return 0, false
		case '\\':
			if i+1 >= len(d) || d[i+1] == '\n' {
				return 0, false
			}
			i += 2
		default:
			i++
		}
	}
	return 0, false
}

// lexError reports the bad byte at d[start] the way libxlutil's lexer sees
// it: the byte plus the rest of its blank-free run is the "token". A bad
// byte that ends the input is dropped without error (flex reaches end of
// input before its error rule can match anything), so it yields EOF.
func (lx *lexer) lexError(start int) (token, *SyntaxError) {
	d := lx.data
	if start+1 >= len(d) {
		lx.off = len(d)
		return token{kind: tEOF, start: lx.off, end: lx.off, pos: lx.pos(start + 1)}, nil
	}
	end := start + 1
	for end < len(d) && d[end] != ' ' && d[end] != '\t' && d[end] != '\n' {
		end++
	}
	text := string(d[start:end])
	c := d[start]
	pos := lx.pos(start)
	var msg string
	switch {
	case c == '\'' || c == '"' || c == '#':
		// The rest of the line is the more useful context here.
		eol := bytes.IndexByte(d[start:], '\n')
		if eol < 0 {
			eol = len(d) - start
		}
		text = string(d[start : start+eol])
		if c == '#' {
			msg = "comment on the last line must end with a newline: " + quoteTok(text)
		} else {
			msg = "unterminated string " + quoteTok(text)
		}
	case c == '\r':
		msg = "unexpected carriage return (xl configs need Unix line endings, not CRLF)"
		text = "\r"
	case c == 0:
		msg = "unexpected NUL byte"
		text = "\x00"
	case c >= 'A' && c <= 'Z':
		msg = "unexpected character " + quoteTok(string(c)) + " in " + quoteTok(text) + " (names are lowercase)"
	case strings.IndexByte("+-.():", c) >= 0:
		msg = "unexpected character " + quoteTok(string(c)) + " in " + quoteTok(text) +
			" (values are quoted strings, numbers or [lists]; xl configs are not Python)"
	default:
		msg = "unexpected character " + quoteTok(string(c)) + " in " + quoteTok(text)
	}
	return token{}, &SyntaxError{Pos: pos, Token: text, Msg: msg, XLULine: pos.Line}
}

// dequote applies libxlutil's escape rules to the string token d[start:end]
// (quotes included):
//
//	\" \' \\            the character itself
//	\a \b \f \n \r \t \v  the control character
//	\x...               always rejected: libxlutil's hex parser skips one
//	                    character too many and demands more digits than its
//	                    two-byte buffer can hold
//	\[0-7]...           the first digit plus a strtoul(3) base-10 run of the
//	                    next up to 3 bytes (blanks and a sign allowed) that
//	                    must consume at least 2 bytes; the whole escape then
//	                    produces NOTHING (libxlutil never stores the value)
//	anything else       rejected
func (lx *lexer) dequote(start, end int) (string, *SyntaxError) {
	s := lx.data[start+1 : end-1]
	if bytes.IndexByte(s, '\\') < 0 && bytes.IndexByte(s, 0) < 0 {
		return lx.src[start+1 : end-1], nil
	}
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return "", lx.stringError(start, end, start+1+i, "\x00", "NUL byte in quoted string", ErrNULInString)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		i++
		if c != '\\' {
			out = append(out, c)
			continue
		}
		bs := start + i // offset of the backslash in d
		nc := s[i]      // scanString guarantees a byte after '\'
		i++
		switch nc {
		case '"', '\'', '\\':
			out = append(out, nc)
		case 'a':
			out = append(out, '\a')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'v':
			out = append(out, '\v')
		case 'x':
			esc := string(s[i-2 : min(i+2, len(s))])
			return "", lx.stringError(start, end, bs, esc,
				"hex escape "+quoteTok(esc)+" in string "+quoteTok(string(lx.data[start:end]))+
					" (libxlutil rejects every \\x escape)", nil)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := strtoulSpan(s[i:min(i+3, len(s))])
			if n < 2 {
				esc := string(s[i-2 : min(i+3, len(s))])
				return "", lx.stringError(start, end, bs, esc,
					"invalid octal escape "+quoteTok(esc)+" in string "+quoteTok(string(lx.data[start:end]))+
						" (libxlutil wants a backslash, an octal digit and at least two more digits)", nil)
			}
			i += n
		default:
			esc := string(s[i-2 : i])
			return "", lx.stringError(start, end, bs, esc,
				"invalid escape "+quoteTok(esc)+" in string "+quoteTok(string(lx.data[start:end])), nil)
		}
	}
	return string(out), nil
}

func (lx *lexer) stringError(start, end, at int, tok, msg string, sentinel error) *SyntaxError {
	pos := lx.pos(at)
	return &SyntaxError{Pos: pos, Token: tok, Msg: msg, XLULine: pos.Line, err: sentinel}
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// strtoulSpan is how many bytes of b strtoul(b, &ep, 10) consumes: leading
// C-locale white space and one sign count only if digits follow; 0 when
// there is no conversion.
func strtoulSpan(b []byte) int {
	i := 0
	for i < len(b) && isCSpace(b[i]) {
		i++
	}
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == i {
		return 0
	}
	return j
}

// quoteTok quotes a token for an error message.
func quoteTok(s string) string {
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return strconv.Quote(s)
}

// ---- parser ----

type parser struct {
	lx   lexer
	tok  token
	cfg  *Config
	vals []Value   // slabs the parser hands Values and Settings out of
	sets []Setting // (a few big allocations instead of one per node)
	// nvals counts the values made, against MaxValues; depth is the
	// current list nesting, against MaxListDepth.
	nvals, depth int
	// last maps a name to the index of its last setting in cfg.Settings
	// (+= joins onto it); joined holds the buffer of a string += chain
	// per name, so the chain's strings share it.
	last   map[string]int
	joined map[string]*strings.Builder
}

func (p *parser) newValue() *Value {
	p.nvals++
	if len(p.vals) == cap(p.vals) {
		p.vals = make([]Value, 0, min(2*cap(p.vals)+16, 256))
	}
	p.vals = p.vals[:len(p.vals)+1]
	return &p.vals[len(p.vals)-1]
}

func (p *parser) advance() *SyntaxError {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// unexpected builds the syntax error for the current token; want says what
// would have been accepted.
func (p *parser) unexpected(want string) *SyntaxError {
	t := p.tok
	text := string(p.lx.data[t.start:t.end])
	xluLine := t.pos.Line
	var what string
	switch t.kind {
	case tEOF:
		what = "unexpected end of file"
		xluLine = p.lx.lastLine
	case tNewline:
		if text[0] == '#' {
			text = strings.TrimRight(text, "\n")
			what = "unexpected comment " + quoteTok(text) + " (end of line)"
		} else {
			what = "unexpected end of line"
		}
		xluLine = t.pos.Line - 1
	case tIdent, tNumber, tString:
		what = "unexpected " + tokNames[t.kind] + " " + quoteTok(text)
	default:
		what = "unexpected " + quoteTok(text)
	}
	return &SyntaxError{Pos: t.pos, Token: text, Msg: what + ", expected " + want, XLULine: xluLine}
}

func (p *parser) parseFile() error {
	if err := p.advance(); err != nil {
		return err
	}
	for {
		switch p.tok.kind {
		case tEOF:
			return nil
		case tNewline, tSemi:
			if err := p.advance(); err != nil {
				return err
			}
		case tIdent:
			if err := p.parseAssignment(); err != nil {
				return err
			}
			switch p.tok.kind {
			case tEOF:
				return nil
			case tNewline, tSemi:
				if err := p.advance(); err != nil {
					return err
				}
			default:
				return p.unexpected("end of line or ';' after the value")
			}
		default:
			return p.unexpected("a setting name (lowercase), end of line or ';'")
		}
	}
}

func (p *parser) parseAssignment() *SyntaxError {
	name := p.tok
	if err := p.advance(); err != nil {
		return err
	}
	op := p.tok
	if op.kind != tAssign && op.kind != tAppend {
		return p.unexpected("'=' or '+=' after " + quoteTok(name.str))
	}
	if err := p.advance(); err != nil {
		return err
	}
	v, lastLine, err := p.parseValue("after " + quoteTok(name.str+" "+tokNames[op.kind][1:len(tokNames[op.kind])-1]))
	if err != nil {
		return err
	}
	// libxlutil stores the setting before it reads the next token.
	return p.store(name, op, v, lastLine)
}

// parseValue parses a value starting at the current token and leaves the
// token after it current. lastLine is the line of the value's last token.
func (p *parser) parseValue(ctx string) (*Value, int, *SyntaxError) {
	t := p.tok
	if p.nvals >= MaxValues && (t.kind == tString || t.kind == tNumber || t.kind == tLBrack) {
		return nil, 0, p.limit(t, fmt.Sprintf("more than %d values", MaxValues))
	}
	switch t.kind {
	case tString, tNumber:
		v := p.newValue()
		*v = Value{Kind: ValueString, Str: t.str, Pos: t.pos, Number: t.kind == tNumber}
		if err := p.advance(); err != nil {
			return nil, 0, err
		}
		return v, t.pos.Line, nil
	case tLBrack:
		if p.depth >= MaxListDepth {
			return nil, 0, p.limit(t, fmt.Sprintf("lists nested more than %d deep", MaxListDepth))
		}
	default:
		return nil, 0, p.unexpected("a value (quoted string, number or '[') " + ctx)
	}
	p.depth++
	defer func() { p.depth-- }()
	v := p.newValue()
	*v = Value{Kind: ValueList, List: []*Value{}, Pos: t.pos}
	if err := p.advance(); err != nil {
		return nil, 0, err
	}
	if err := p.skipNewlines(); err != nil {
		return nil, 0, err
	}
	for {
		// Here: after '[' or after ','; a value or ']' may follow.
		if p.tok.kind == tRBrack {
			break
		}
		if p.tok.kind != tString && p.tok.kind != tNumber && p.tok.kind != tLBrack {
			if len(v.List) == 0 {
				return nil, 0, p.unexpected("a value or ']' in the list")
			}
			return nil, 0, p.unexpected("a value or ']' after ','")
		}
		item, _, err := p.parseValue("")
		if err != nil {
			return nil, 0, err
		}
		v.List = append(v.List, item)
		if err := p.skipNewlines(); err != nil {
			return nil, 0, err
		}
		if p.tok.kind == tRBrack {
			break
		}
		if p.tok.kind != tComma {
			return nil, 0, p.unexpected("',' or ']' after a list item")
		}
		if err := p.advance(); err != nil {
			return nil, 0, err
		}
		if err := p.skipNewlines(); err != nil {
			return nil, 0, err
		}
	}
	end := p.tok.pos.Line
	if err := p.advance(); err != nil {
		return nil, 0, err
	}
	return v, end, nil
}

// limit is the ErrLimit error at token t.
func (p *parser) limit(t token, what string) *SyntaxError {
	return &SyntaxError{Pos: t.pos, Token: string(p.lx.data[t.start:t.end]), Msg: what + ": over the limit for an xl config", XLULine: t.pos.Line, err: ErrLimit}
}

func (p *parser) skipNewlines() *SyntaxError {
	for p.tok.kind == tNewline {
		if err := p.advance(); err != nil {
			return err
		}
	}
	return nil
}

// store records a setting. For += it joins the operand to the name's
// current value the way xlu__cfg_set_store does: strings concatenate, lists
// get the new items after the old ones, and a string/list mix is an error.
// Without an earlier value, += stores the operand as it is (but the setting
// stays an addition: xlu_cfg_get_long refuses it).
func (p *parser) store(name, op token, v *Value, lastLine int) *SyntaxError {
	if len(p.sets) == cap(p.sets) {
		p.sets = make([]Setting, 0, min(2*cap(p.sets)+16, 256))
	}
	p.sets = p.sets[:len(p.sets)+1]
	s := &p.sets[len(p.sets)-1]
	*s = Setting{Name: name.str, Value: v, Pos: name.pos, Append: op.kind == tAppend, Operand: v}
	if s.Append {
		if i, ok := p.last[s.Name]; ok {
			prev := p.cfg.Settings[i].Value
			if prev.Kind != v.Kind {
				return &SyntaxError{
					Pos:   op.pos,
					Token: "+=",
					Msg: fmt.Sprintf("can't append a %s to %s: it is a %s (set at %s)",
						v.Kind, quoteTok(s.Name), prev.Kind, p.cfg.Settings[i].Pos),
					XLULine: lastLine,
				}
			}
			joined := &Value{Kind: v.Kind, Pos: v.Pos, Number: false}
			if v.Kind == ValueString {
				joined.Str = p.joinString(s.Name, prev.Str, v.Str)
			} else {
				// append may extend prev's backing array in place: only
				// past prev's length, which no earlier value sees, and
				// the next += of the name starts from this one. Amortized
				// linear where a copy per statement was quadratic.
				joined.List = append(prev.List, v.List...)
			}
			s.Value = joined
		}
	}
	if !s.Append {
		delete(p.joined, s.Name) // a new chain starts from a plain value
	}
	p.last[s.Name] = len(p.cfg.Settings)
	p.cfg.Settings = append(p.cfg.Settings, s)
	return nil
}

// joinString is prev+next for a string += chain of name. The chain's
// strings are prefixes of one growing buffer (a strings.Builder never
// rewrites what it handed out), so a chain costs its final length, not
// the sum of every prefix.
func (p *parser) joinString(name, prev, next string) string {
	b := p.joined[name]
	if b == nil || b.Len() != len(prev) {
		// Start the chain's buffer from the value it joins onto.
		if p.joined == nil {
			p.joined = map[string]*strings.Builder{}
		}
		b = &strings.Builder{}
		b.WriteString(prev)
		p.joined[name] = b
	}
	b.WriteString(next)
	return b.String()
}
