package cli

import (
	"context"

	"github.com/ipp-hpc/ipp"
)

// EngineList makes the ipp client an engineLister for %engines.
func (c ippClient) EngineList(ctx context.Context) ([]ipp.EngineInfo, error) {
	return c.c.Engines(ctx)
}
