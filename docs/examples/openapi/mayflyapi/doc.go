// Package mayflyapi is a client of Mayfly's HTTP API that oapi-codegen generates from
// server/httpapi/openapi.json into mayfly.gen.go (not committed: the document is the
// source, and server/httpapi's TestOpenAPIGenerators generates and builds it).
package mayflyapi

//go:generate go tool oapi-codegen -config ../oapi-codegen.yaml ../../../../server/httpapi/openapi.json
