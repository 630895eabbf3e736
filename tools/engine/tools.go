//go:build tools

// Package tools only records the main packages built from this module, so `go mod tidy` keeps them.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
