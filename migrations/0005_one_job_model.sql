ALTER TABLE `jobs` ADD `step` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `jobs` ADD `steps` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `idempotency_key` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `request_sha256` text;--> statement-breakpoint
CREATE INDEX `jobs_kind_seq` ON `jobs` (`kind`,`seq`);--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_key_kind_idempotency` ON `jobs` (`key_id`,`kind`,`idempotency_key`);--> statement-breakpoint
-- job_items: source_name and input_path become optional (a generation's videos have no input file).
-- (The migrator runs in a transaction, where PRAGMA foreign_keys cannot change: no table here is
-- referenced by another, so none needs it.)
CREATE TABLE `__new_job_items` (
	`job_id` text NOT NULL,
	`index` integer NOT NULL,
	`source_name` text,
	`input_path` text,
	`input_bytes` integer DEFAULT 0 NOT NULL,
	`status` text DEFAULT 'queued' NOT NULL,
	`error_code` text,
	`error_message` text,
	`outputs` text,
	`output_sha256` text,
	`metadata` text,
	`started_at` integer,
	`finished_at` integer,
	PRIMARY KEY(`job_id`, `index`),
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade
);--> statement-breakpoint
INSERT INTO `__new_job_items`("job_id", "index", "source_name", "input_path", "input_bytes", "status", "error_code", "error_message", "outputs", "output_sha256", "metadata", "started_at", "finished_at") SELECT "job_id", "index", "source_name", "input_path", "input_bytes", "status", "error_code", "error_message", "outputs", "output_sha256", "metadata", "started_at", "finished_at" FROM `job_items`;--> statement-breakpoint
DROP TABLE `job_items`;--> statement-breakpoint
ALTER TABLE `__new_job_items` RENAME TO `job_items`;--> statement-breakpoint
-- One job model (issue 22): generations become jobs of kind "generate", numbered after every
-- existing job, their videos items (outputs by role: latents for npy, else video).
INSERT INTO `jobs`("id", "seq", "kind", "status", "key_id", "model", "options", "error_code", "error_message", "progress", "step", "steps", "attempts", "idempotency_key", "request_sha256", "created_at", "started_at", "finished_at") SELECT "id", "seq" + (SELECT coalesce(max("seq"), 0) FROM `jobs`), 'generate', "status", "key_id", "model", "options", "error_code", "error_message", CASE WHEN "status" IN ('succeeded', 'failed', 'canceled') THEN 1 ELSE CAST("step" AS REAL) / max("steps", 1) END, "step", "steps", "attempts", "idempotency_key", "request_sha256", "created_at", "started_at", "finished_at" FROM `generations`;--> statement-breakpoint
WITH RECURSIVE `k`("i") AS (SELECT 0 UNION ALL SELECT "i" + 1 FROM `k` WHERE "i" < 63) INSERT INTO `job_items`("job_id", "index", "source_name", "input_path", "input_bytes", "status", "error_code", "error_message", "outputs", "output_sha256", "metadata", "started_at", "finished_at") SELECT g."id", k."i", NULL, NULL, 0, g."status", g."error_code", g."error_message", CASE WHEN g."status" = 'succeeded' AND json_extract(g."outputs", '$[' || k."i" || ']') IS NOT NULL THEN json_object(CASE WHEN json_extract(g."options", '$.format') = 'npy' THEN 'latents' ELSE 'video' END, json_extract(g."outputs", '$[' || k."i" || ']')) END, CASE WHEN g."status" = 'succeeded' THEN json_extract(g."output_sha256", '$[' || k."i" || ']') END, NULL, g."started_at", g."finished_at" FROM `generations` g JOIN `k` ON k."i" < coalesce(json_extract(g."options", '$.n'), json_array_length(g."outputs"), 1);--> statement-breakpoint
-- webhooks: keyed by the job (deleted with it) rather than by free text; the resource is the job's kind.
CREATE TABLE `__new_webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`job_id` text NOT NULL,
	`url` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`last_error` text,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`delivered_at` integer,
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade
);--> statement-breakpoint
INSERT INTO `__new_webhooks`("id", "job_id", "url", "status", "attempts", "next_attempt_at", "last_error", "created_at", "delivered_at") SELECT "id", "job_id", "url", "status", "attempts", "next_attempt_at", "last_error", "created_at", "delivered_at" FROM `webhooks` WHERE "job_id" IN (SELECT "id" FROM `jobs`);--> statement-breakpoint
DROP TABLE `webhooks`;--> statement-breakpoint
ALTER TABLE `__new_webhooks` RENAME TO `webhooks`;--> statement-breakpoint
CREATE INDEX `webhooks_status_next` ON `webhooks` (`status`,`next_attempt_at`);--> statement-breakpoint
DROP TABLE `generations`;
