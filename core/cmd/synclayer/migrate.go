package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/synclayer/synclayer/core/cluster"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/store/postgres"
)

func migrateCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the PostgreSQL store's schema to this version, then exit",
		Long: `Bring the schema of the PostgreSQL database named by the configuration's
service { store { driver = "postgres", dsn = ... } } to this version of
synclayer, then exit. Every host does it at start too (under a lock: hosts
starting at once migrate once); run it alone to migrate before a rollout,
or when hosts run with a database role that may not change the schema.
The embedded badger store needs no migration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if cfg.Service.Store.Driver != config.StorePostgres {
				return errors.New(`migrate is for the PostgreSQL store (service { store { driver = "postgres" } }); the badger store needs none`)
			}
			secrets := redact.New()
			configSecrets(cfg, secrets)
			log := newLogger(cfg.Service, secrets)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			if err := postgres.Migrate(ctx, cfg.Service.Store.DSN, log.Named("store")); err != nil {
				return errors.New(secrets.Replace(err.Error()))
			}
			// The run distribution's tables (River's and the schedules').
			pool, err := pgxpool.New(ctx, cfg.Service.Store.DSN)
			if err != nil {
				return errors.New(secrets.Replace(err.Error()))
			}
			defer pool.Close()
			if err := cluster.Migrate(ctx, pool, log.Named("cluster")); err != nil {
				return errors.New(secrets.Replace(err.Error()))
			}
			fmt.Println("the database schema is current")
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "a layer file, or a folder of *.hcl files (required)")
	cmd.MarkFlagRequired("config")
	return cmd
}
