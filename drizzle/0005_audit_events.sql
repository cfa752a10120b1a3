CREATE TABLE "audit_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"api_key_id" text NOT NULL,
	"action" text NOT NULL,
	"target_id" text,
	"request_id" text NOT NULL,
	"status" integer NOT NULL,
	CONSTRAINT "audit_events_status" CHECK ("audit_events"."status" BETWEEN 100 AND 599)
);
