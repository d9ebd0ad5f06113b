package router

import (
	"fmt"
	"strings"

	"github.com/antlr/antlr4/runtime/Go/antlr"
	"github.com/cloudevents/sdk-go/sql/v2/gen"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
)

// cesqlSyntaxErrors lexes and parses text with the grammar sdk-go's CESQL
// parser uses, and returns what is wrong with it, each with its column.
// sdk-go's own parser reports a syntax error without its message and
// prints lexer errors (such as a character no token starts with) to
// stderr; asking here first gives a config error that says what is wrong,
// and keeps the standard error clean.
func cesqlSyntaxErrors(text string) []string {
	errs := &syntaxErrors{DefaultErrorListener: antlr.NewDefaultErrorListener()}
	lexer := gen.NewCESQLParserLexer(cesqlparser.NewCaseChangingStream(antlr.NewInputStream(text), true))
	lexer.RemoveErrorListeners()
	lexer.AddErrorListener(errs)
	p := gen.NewCESQLParserParser(antlr.NewCommonTokenStream(lexer, antlr.TokenDefaultChannel))
	p.RemoveErrorListeners()
	p.AddErrorListener(errs)
	p.Cesql()
	return errs.errs
}

// syntaxErrors collects an ANTLR recognizer's errors.
type syntaxErrors struct {
	*antlr.DefaultErrorListener
	errs []string
}

func (e *syntaxErrors) SyntaxError(_ antlr.Recognizer, _ any, _, column int, msg string, _ antlr.RecognitionException) {
	e.errs = append(e.errs, fmt.Sprintf("column %d: %s", column+1, strings.TrimSpace(msg)))
}
