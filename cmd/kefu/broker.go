package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/api"
)

// runBroker is a Broker with the loop that joins it to the other instances.
type runBroker interface {
	api.Broker
	Run(ctx context.Context)
}

// newBroker is the broker cfg.Broker names: "postgres" (the default: LISTEN/NOTIFY on the
// database every instance shares), "nats" (a NATS server at cfg.NATSURL; the subjects are
// namespaced by the database and schema) or "memory" (this instance alone).
func newBroker(ctx context.Context, cfg Config, pool *pgxpool.Pool, log *slog.Logger) (runBroker, error) {
	switch cfg.Broker {
	case "", "postgres":
		return api.NewPGBroker(pool, log), nil
	case "nats":
		ns, err := api.BrokerNamespace(ctx, pool)
		if err != nil {
			return nil, err
		}
		b, err := api.NewNATSBroker(cfg.NATSURL, ns, log)
		if err != nil {
			return nil, err
		}
		log.Info("frames reach other instances through NATS", "namespace", ns)
		return b, nil
	case "memory":
		return memoryBroker{api.NewHub()}, nil
	default:
		return nil, fmt.Errorf("-broker %q: want postgres, nats or memory", cfg.Broker)
	}
}

// memoryBroker is the in-process hub: frames reach this instance's connections only.
type memoryBroker struct{ *api.Hub }

func (memoryBroker) Run(ctx context.Context) { <-ctx.Done() }
