ALTER TABLE "accounts" ADD CONSTRAINT "accounts_kind" CHECK ("accounts"."kind" IN ('customer', 'system'));--> statement-breakpoint
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_status" CHECK ("accounts"."status" IN ('open', 'closed'));--> statement-breakpoint
ALTER TABLE "applied_legs" ADD CONSTRAINT "applied_legs_leg" CHECK ("applied_legs"."leg" IN ('debit', 'credit', 'refund'));--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_leg" CHECK ("ledger_entries"."leg" IN ('debit', 'credit', 'refund'));--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_version_positive" CHECK ("ledger_entries"."account_version" > 0);--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_type" CHECK ("transfers"."type" IN ('deposit', 'withdrawal', 'transfer', 'reversal', 'interest'));--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_status" CHECK ("transfers"."status" IN ('accepted', 'debited', 'completed', 'failed'));--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_failure_code" CHECK ("transfers"."failure_code" IN ('account_not_found', 'account_closed', 'currency_mismatch', 'insufficient_funds'));