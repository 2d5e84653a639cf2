-- Market data, written by the data pipeline (and `gordon-manager data import-klines`, which runs
-- with the admin URL). The manager reads it only through the v_*_reader views (the seed's
-- "migration 0019 latency exception"): direct SELECT on these tables is not granted to it.
--
-- Prices are double precision: Binance publishes at most 8 decimals on values below 1e7, i.e. at
-- most 15 significant digits, which float8 round-trips exactly (str -> float -> repr), and it
-- streams to the backtester ~10x faster than numeric.
CREATE TABLE market_data.klines (
    symbol                 text             NOT NULL CHECK (symbol ~ '^[A-Z0-9]{2,20}$'),
    interval               text             NOT NULL CHECK (interval ~ '^[0-9]+[smhdwM]$'),
    open_time              timestamptz      NOT NULL,
    close_time             timestamptz      NOT NULL,
    open                   double precision NOT NULL,
    high                   double precision NOT NULL,
    low                    double precision NOT NULL,
    close                  double precision NOT NULL,
    volume                 double precision NOT NULL,
    quote_volume           double precision NOT NULL DEFAULT 0,
    trades                 bigint           NOT NULL DEFAULT 0,
    taker_buy_base_volume  double precision NOT NULL DEFAULT 0,
    taker_buy_quote_volume double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, interval, open_time)
);

CREATE TABLE market_data.metrics (
    symbol    text             NOT NULL,
    name      text             NOT NULL,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (symbol, name, ts)
);

CREATE TABLE market_data.macro (
    series    text             NOT NULL,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (series, ts)
);

CREATE TABLE market_data.funding_rates (
    symbol       text             NOT NULL,
    funding_time timestamptz      NOT NULL,
    funding_rate double precision NOT NULL,
    mark_price   double precision,
    PRIMARY KEY (symbol, funding_time)
);

CREATE TABLE market_data.open_interest (
    symbol              text             NOT NULL,
    ts                  timestamptz      NOT NULL,
    open_interest       double precision NOT NULL,
    open_interest_value double precision,
    PRIMARY KEY (symbol, ts)
);

-- Reader views: the only way the manager sees market data. They run with the view owner's rights.
CREATE VIEW market_data.v_klines_reader AS
    SELECT symbol, interval, open_time, close_time, open, high, low, close, volume,
           quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume
      FROM market_data.klines;
CREATE VIEW market_data.v_metrics_reader AS SELECT symbol, name, ts, value FROM market_data.metrics;
CREATE VIEW market_data.v_macro_reader AS SELECT series, ts, value FROM market_data.macro;
CREATE VIEW market_data.v_funding_rates_reader AS
    SELECT symbol, funding_time, funding_rate, mark_price FROM market_data.funding_rates;
CREATE VIEW market_data.v_open_interest_reader AS
    SELECT symbol, ts, open_interest, open_interest_value FROM market_data.open_interest;
