package main

import (
	"fmt"

	"github.com/govscsi/govscsi/internal/version"
)

// printversion prints version.String(), for TestStamp.
func main() { fmt.Print(version.String()) }
