-- The quota counts, the claim of the next queued job and a key's job list read the active rows (or
-- one key's) through indexes that lead with them, not every job a key or kind ever had (issue 22).
DROP INDEX `jobs_key_status`;--> statement-breakpoint
CREATE INDEX `jobs_key_status_kind` ON `jobs` (`key_id`,`status`,`kind`);--> statement-breakpoint
CREATE INDEX `jobs_status_kind_seq` ON `jobs` (`status`,`kind`,`seq`);--> statement-breakpoint
CREATE INDEX `jobs_key_kind_seq` ON `jobs` (`key_id`,`kind`,`seq`);