-- Staff accounts, categories and the refresh tokens of staff sessions.

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL,
    name           text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
    supervisor_id  bigint REFERENCES users (id),
    capacity       integer NOT NULL DEFAULT 3 CHECK (capacity BETWEEN 1 AND 50),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_supervisor_idx ON users (supervisor_id);

CREATE TABLE categories (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    parent_id   bigint REFERENCES categories (id),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX categories_name_key ON categories (coalesce(parent_id, 0), lower(name));

CREATE TABLE agent_categories (
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_id  bigint NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, category_id)
);

-- Refresh tokens are stored as SHA-256 hex digests; one family per login. A token is used once:
-- presenting a used token again revokes its whole family (theft detection, RFC 9700 4.14.2).
CREATE TABLE refresh_tokens (
    token_hash  text PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
