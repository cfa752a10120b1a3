ALTER TABLE "transfers" ADD CONSTRAINT "transfers_shape" CHECK (CASE "transfers"."type"
            WHEN 'deposit' THEN "transfers"."from_account_id" IS NULL AND "transfers"."to_account_id" IS NOT NULL
            WHEN 'interest' THEN "transfers"."from_account_id" IS NULL AND "transfers"."to_account_id" IS NOT NULL
            WHEN 'withdrawal' THEN "transfers"."from_account_id" IS NOT NULL AND "transfers"."to_account_id" IS NULL
            ELSE "transfers"."from_account_id" IS NOT NULL AND "transfers"."to_account_id" IS NOT NULL
                 AND "transfers"."from_account_id" <> "transfers"."to_account_id"
          END);