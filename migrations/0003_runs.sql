CREATE TABLE `run_artifacts` (
	`run_id` text NOT NULL,
	`kind` text NOT NULL,
	`path` text NOT NULL,
	`sha256` text,
	`step` integer,
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `run_artifacts_path` ON `run_artifacts` (`run_id`,`kind`,`path`);--> statement-breakpoint
CREATE TABLE `run_events` (
	`run_id` text NOT NULL,
	`seq` integer NOT NULL,
	`type` text NOT NULL,
	`step` integer,
	`time` real,
	`json` text NOT NULL,
	PRIMARY KEY(`run_id`, `seq`),
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `run_events_type` ON `run_events` (`run_id`,`type`,`seq`);--> statement-breakpoint
CREATE TABLE `run_metrics` (
	`run_id` text NOT NULL,
	`name` text NOT NULL,
	`step` integer NOT NULL,
	`value` real NOT NULL,
	`time` real,
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `run_metrics_name_step` ON `run_metrics` (`run_id`,`name`,`step`);--> statement-breakpoint
CREATE TABLE `runs` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`variant` text,
	`status` text NOT NULL,
	`folder` text NOT NULL,
	`config` text NOT NULL,
	`autoencoder_run_id` text,
	`step` integer DEFAULT 0 NOT NULL,
	`steps` integer,
	`error` text,
	`started_at` integer,
	`finished_at` integer,
	`imported_at` integer,
	`source` text NOT NULL,
	`pid` integer,
	`bytes_read` integer DEFAULT 0 NOT NULL,
	`lines_read` integer DEFAULT 0 NOT NULL,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`updated_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `runs_started` ON `runs` (`started_at`,`id`);--> statement-breakpoint
CREATE INDEX `runs_kind_started` ON `runs` (`kind`,`started_at`);--> statement-breakpoint
CREATE INDEX `runs_autoencoder` ON `runs` (`autoencoder_run_id`);--> statement-breakpoint
CREATE INDEX `runs_status` ON `runs` (`status`);