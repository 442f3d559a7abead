-- Analytics: where each order is (district, H3 cell), and rollups that a periodic job
-- refreshes for the days touched since its last run (docs/analytics.md).

-- Where an order is, computed once in Python (shapely districts, h3 cell) by the refresh.
CREATE TABLE analytics_order_places (
    order_id bigint PRIMARY KEY REFERENCES orders(id) ON DELETE CASCADE,
    district text NOT NULL,              -- '' when outside every known district
    h3_r8    bigint NOT NULL             -- the order's H3 cell at resolution 8
);

-- To find what changed since the last refresh, and a day's orders.
CREATE INDEX orders_updated_at ON orders (updated_at);
CREATE INDEX orders_city_created ON orders (city_id, created_at);
CREATE INDEX ratings_created_at ON ratings (created_at);

-- Sums per city, local day and hour (of booking), district and category. Every metric on
-- the dashboards is a sum of these or a ratio of two sums (analytics/rules.py).
CREATE TABLE analytics_hourly (
    city_id              text NOT NULL,
    day                  date NOT NULL,
    hour                 smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    district             text NOT NULL,
    category             text NOT NULL,
    orders               integer NOT NULL,
    completed            integer NOT NULL,
    cancelled            integer NOT NULL,
    failed               integer NOT NULL,
    gmv_fen              bigint NOT NULL,   -- price of completed orders, in fen
    assigned             integer NOT NULL,
    assign_s_sum         double precision NOT NULL,
    waited               integer NOT NULL,
    wait_s_sum           double precision NOT NULL,
    ratings              integer NOT NULL,
    stars_sum            integer NOT NULL,
    new_customers        integer NOT NULL,  -- customers whose first order this is
    repeat_orders        integer NOT NULL,  -- orders of customers who had ordered before
    new_repeat_customers integer NOT NULL,  -- customers whose second order this is
    PRIMARY KEY (city_id, day, hour, district, category)
);

-- The same without the hour (a twelfth of the rows): every breakdown but by=hour reads it.
CREATE TABLE analytics_daily (LIKE analytics_hourly);
ALTER TABLE analytics_daily DROP COLUMN hour;
ALTER TABLE analytics_daily ADD PRIMARY KEY (city_id, day, district, category);

-- Orders per city, local day and H3 cell (resolution 8): the heatmap.
CREATE TABLE analytics_heat (
    city_id  text NOT NULL,
    day      date NOT NULL,
    h3_r8    bigint NOT NULL,
    district text NOT NULL,
    orders   integer NOT NULL,
    PRIMARY KEY (city_id, day, h3_r8, district)
);

-- Per worker and local day: jobs done, time busy, income, time available.
CREATE TABLE analytics_worker_days (
    city_id     text NOT NULL,
    day         date NOT NULL,
    worker_id   bigint NOT NULL,
    jobs        integer NOT NULL,
    busy_s      bigint NOT NULL,            -- set off to completed, of completed jobs
    income_fen  bigint NOT NULL,            -- price of the completed jobs, in fen
    available_s integer NOT NULL,           -- the worker's availability that day
    PRIMARY KEY (day, city_id, worker_id)   -- day first: a range of days of every city
);

-- The same per worker and calendar month (the first day of the month): a year's worker
-- table reads 12 rows per worker instead of 365, plus the days of partial months.
CREATE TABLE analytics_worker_months (
    city_id     text NOT NULL,
    month       date NOT NULL,
    worker_id   bigint NOT NULL,
    jobs        integer NOT NULL,
    busy_s      bigint NOT NULL,
    income_fen  bigint NOT NULL,
    available_s bigint NOT NULL,
    PRIMARY KEY (month, city_id, worker_id)
);

-- All workers of a city per day: the summary's worker figures.
CREATE TABLE analytics_worker_totals (
    city_id     text NOT NULL,
    day         date NOT NULL,
    workers     integer NOT NULL,           -- workers with a job or availability that day
    jobs        integer NOT NULL,
    busy_s      bigint NOT NULL,
    income_fen  bigint NOT NULL,
    available_s bigint NOT NULL,
    PRIMARY KEY (city_id, day)
);

-- The refresh's own state: one row.
CREATE TABLE analytics_refresh (
    id           smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    watermark    timestamptz,               -- changes after (this - overlap) are looked at
    refreshed_at timestamptz NOT NULL,
    days         integer NOT NULL,          -- (city, day) pairs the last run rebuilt
    took_ms      integer NOT NULL
);
