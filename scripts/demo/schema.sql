-- daytrading_prod demo schema and data (run as the application owner daytrading_prod).
CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    account_number  text NOT NULL UNIQUE,
    owner_name      text NOT NULL,
    email           text NOT NULL,
    api_key         text,
    api_secret      text,
    balance         numeric(18,2) NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id           bigserial PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts(id),
    symbol       text NOT NULL,
    side         text NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type   text NOT NULL CHECK (order_type IN ('market', 'limit', 'stop')),
    quantity     numeric(18,4) NOT NULL CHECK (quantity > 0),
    limit_price  numeric(18,4),
    status       text NOT NULL DEFAULT 'new',
    note         text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trades (
    id           bigserial PRIMARY KEY,
    order_id     bigint NOT NULL REFERENCES orders(id),
    account_id   bigint NOT NULL REFERENCES accounts(id),
    symbol       text NOT NULL,
    side         text NOT NULL,
    quantity     numeric(18,4) NOT NULL,
    price        numeric(18,4) NOT NULL,
    fee          numeric(18,4) NOT NULL DEFAULT 0,
    executed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE positions (
    account_id  bigint NOT NULL REFERENCES accounts(id),
    symbol      text NOT NULL,
    quantity    numeric(18,4) NOT NULL,
    avg_price   numeric(18,4) NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, symbol)
);

INSERT INTO accounts (account_number, owner_name, email, api_key, api_secret, balance) VALUES
  ('DT-1000-0001', 'Aiko Tanaka',   'aiko.tanaka@example.jp',  'ak_live_7f3a9c2e51b84d06', 'sk_live_0b1e5c9a7d3f4e28b6a1', 250000.00),
  ('DT-1000-0002', 'Kenji Sato',    'kenji.sato@example.jp',   'ak_live_2c8e4b7a90d15f33', 'sk_live_9d2a6f1c3b8e7a40c5d2', 125500.50),
  ('DT-1000-0003', 'Mary O''Reilly','mary.oreilly@example.com', 'ak_live_5a1d9e3c7b2f8046', 'sk_live_3e7c1a9b5d2f6048a1e9',  98000.00);

INSERT INTO orders (account_id, symbol, side, order_type, quantity, limit_price, status, note) VALUES
  (1, '7203.T', 'buy',  'limit',  100, 2850.0, 'filled', 'Toyota: add on pullback'),
  (1, 'AAPL',   'sell', 'market',  20, NULL,   'filled', 'trim before earnings'),
  (2, '6758.T', 'buy',  'limit',  200, 13200.0,'open',   'Sony, staged entry 1/3'),
  (3, 'UNP',    'buy',  'limit',   50, 231.40, 'filled', 'Union Pacific: select the best performers, drop the laggards');

INSERT INTO trades (order_id, account_id, symbol, side, quantity, price, fee) VALUES
  (1, 1, '7203.T', 'buy',  100, 2849.5, 120.0),
  (2, 1, 'AAPL',   'sell',  20, 228.31,   1.0),
  (4, 3, 'UNP',    'buy',   50, 231.35,   1.0);

INSERT INTO positions (account_id, symbol, quantity, avg_price) VALUES
  (1, '7203.T', 100, 2849.5),
  (3, 'UNP',     50, 231.35);

-- The analyst reads; it never writes.
GRANT USAGE ON SCHEMA public TO daytrading_readonly;
GRANT SELECT ON accounts, orders, trades, positions TO daytrading_readonly;
