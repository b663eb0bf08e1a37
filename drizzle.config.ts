// drizzle-kit: `npm run db:generate` writes SQL migrations for changes to the TypeScript schema.
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/store/schema.ts",
  out: "./migrations",
});
