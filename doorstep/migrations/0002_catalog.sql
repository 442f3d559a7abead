-- Cities with service areas; skills, certificate kinds, categories and services.
CREATE TABLE cities (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9-]{1,39}$'),
    name_zh       text NOT NULL,
    name_en       text NOT NULL,
    timezone      text NOT NULL,
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    service_area  jsonb NOT NULL,          -- GeoJSON (Multi)Polygon, WGS-84
    bbox          double precision[4] NOT NULL,  -- min_lat, min_lng, max_lat, max_lng
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE skills (
    code    text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    name_zh text NOT NULL,
    name_en text NOT NULL
);

CREATE TABLE certificate_kinds (
    code           text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    name_zh        text NOT NULL,
    name_en        text NOT NULL,
    validity_years integer NOT NULL CHECK (validity_years BETWEEN 1 AND 50)
);

CREATE TABLE categories (
    code    text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    name_zh text NOT NULL,
    name_en text NOT NULL,
    sort    integer NOT NULL DEFAULT 0
);

CREATE TABLE services (
    code                  text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    category              text NOT NULL REFERENCES categories(code),
    name_zh               text NOT NULL,
    name_en               text NOT NULL,
    description_zh        text NOT NULL DEFAULT '',
    description_en        text NOT NULL DEFAULT '',
    price_minor           integer NOT NULL CHECK (price_minor >= 0),
    currency              text NOT NULL DEFAULT 'CNY' CHECK (currency ~ '^[A-Z]{3}$'),
    duration_min          integer NOT NULL CHECK (duration_min BETWEEN 15 AND 60 * 24 * 31),
    required_skills       text[] NOT NULL DEFAULT '{}',
    required_certificates text[] NOT NULL DEFAULT '{}',
    checklist             jsonb NOT NULL DEFAULT '[]',
    instant               boolean NOT NULL,
    scheduled             boolean NOT NULL,
    active                boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (instant OR scheduled)
);
CREATE INDEX services_category ON services (category);
