-- Layers: every other table is keyed by a layer's id.
CREATE TABLE synclayer_layers (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
