ALTER TABLE "api_keys" ADD COLUMN "seq" bigserial NOT NULL;--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_seq_unique" UNIQUE("seq");