// Package zaplog adapts a zap logger to the Temporal SDK's log.Logger, so
// workers, workflows (through workflow.GetLogger) and activities all log
// through zap with key/value fields.
package zaplog

import (
	"fmt"
	"os"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger implements log.Logger and log.WithLogger on top of zap.
type Logger struct {
	z *zap.Logger
}

var (
	_ log.Logger     = (*Logger)(nil)
	_ log.WithLogger = (*Logger)(nil)
)

// New wraps z. Odd key/value lists keep the dangling value under "extra".
func New(z *zap.Logger) *Logger { return &Logger{z: z.WithOptions(zap.AddCallerSkip(1))} }

// NewProduction returns a JSON logger to stderr at the given level
// ("debug", "info", "warn", "error"), as processes of Drover use it.
func NewProduction(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	return cfg.Build()
}

// Zap returns the underlying zap logger.
func (l *Logger) Zap() *zap.Logger { return l.z }

// Debug logs at debug level.
func (l *Logger) Debug(msg string, keyvals ...interface{}) { l.z.Debug(msg, fields(keyvals)...) }

// Info logs at info level.
func (l *Logger) Info(msg string, keyvals ...interface{}) { l.z.Info(msg, fields(keyvals)...) }

// Warn logs at warn level.
func (l *Logger) Warn(msg string, keyvals ...interface{}) { l.z.Warn(msg, fields(keyvals)...) }

// Error logs at error level.
func (l *Logger) Error(msg string, keyvals ...interface{}) { l.z.Error(msg, fields(keyvals)...) }

// With returns a logger that adds keyvals to every entry.
func (l *Logger) With(keyvals ...interface{}) log.Logger {
	return &Logger{z: l.z.With(fields(keyvals)...)}
}

func fields(keyvals []interface{}) []zap.Field {
	fs := make([]zap.Field, 0, (len(keyvals)+1)/2)
	for i := 0; i < len(keyvals); i += 2 {
		if i+1 == len(keyvals) {
			fs = append(fs, zap.Any("extra", keyvals[i]))
			break
		}
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		fs = append(fs, zap.Any(key, keyvals[i+1]))
	}
	return fs
}

// Stderr is a convenience for mains: a production logger at level, or a
// message on stderr and exit 2 if the level is invalid.
func Stderr(level string) *zap.Logger {
	z, err := NewProduction(level)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return z
}
