//go:build !race

package main

// raceEnabled reports whether this binary was built with -race (which
// inflates memory several times, so its RSS says nothing about Drover's).
const raceEnabled = false
