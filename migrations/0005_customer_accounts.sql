-- Optional customer accounts (POST /auth/register). Separate from `customers`, which holds one row
-- per e-mail for every chat ever started, anonymous ones included: an account owns only the
-- conversations started while signed in (conversations.account_id), never those of its address.

CREATE TABLE customer_accounts (
    id             uuid PRIMARY KEY,
    email          text NOT NULL,
    name           text NOT NULL,
    password_hash  text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customer_accounts_email_key ON customer_accounts (lower(email));

ALTER TABLE conversations ADD COLUMN account_id uuid;
CREATE INDEX conversations_account_idx ON conversations (account_id, created_at DESC) WHERE account_id IS NOT NULL;
