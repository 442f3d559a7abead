-- Access tokens carry the user's token version; freezing or closing an account bumps
-- it, so every token issued before stops working, even after an unfreeze.
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;
