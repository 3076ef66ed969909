-- Routing per category (issue 11): `pick` (agents take customers from the queue) or `offer` (each
-- waiting customer is offered to one agent at a time, who accepts or declines), and the wrap-up
-- time an agent gets after closing one of its conversations. `updated_at` orders the copies that
-- nodes mirror into Redis for the routing scripts (an older copy never replaces a newer one).
ALTER TABLE categories
    ADD COLUMN routing text NOT NULL DEFAULT 'pick' CHECK (routing IN ('pick', 'offer')),
    ADD COLUMN wrap_up_s integer NOT NULL DEFAULT 0 CHECK (wrap_up_s BETWEEN 0 AND 3600),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- The uncategorised queue (category id 0 in the API and in Redis) has no categories row; its
-- routing and wrap-up live in this one-row table (`PATCH /api/v1/categories/0`).
CREATE TABLE uncategorised_queue (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    routing     text NOT NULL DEFAULT 'pick' CHECK (routing IN ('pick', 'offer')),
    wrap_up_s   integer NOT NULL DEFAULT 0 CHECK (wrap_up_s BETWEEN 0 AND 3600),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO uncategorised_queue DEFAULT VALUES;
