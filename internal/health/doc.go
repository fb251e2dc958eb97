// Package health decides whether a server may take traffic.
//
// A Monitor is one server's health state machine with HAProxy's semantics
// (doc/configuration.txt: inter, fastinter, downinter, rise, fall, observe,
// error-limit, on-error fail-check): it runs a Checker on a schedule, counts
// consecutive results, and also takes passive results observed on live
// traffic. The Checkers here are TCP connect, HTTP request and MySQL/MariaDB
// role (primary or replica) checks.
//
// The package logs nothing: the caller logs the transitions it is told about
// through the onChange callback.
package health
