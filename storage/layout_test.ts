import assert from "node:assert/strict";
import { join } from "node:path";
import {
  hasParquetFile,
  newFileName,
  parsePartitionPath,
  partitionDir,
  timeframeDir,
  walkParquetFiles,
} from "./layout.ts";

Deno.test("partitionDir() gives the same year folder for every timeframe, in both trees", () => {
  assert.equal(
    partitionDir("1m", "BRK.B", "2024-03-04"),
    join("bars", "timeframe=1m", "symbol=BRK.B", "year=2024"),
  );
  assert.equal(
    partitionDir("1d", "SPY", "2024-03-04", "quarantine"),
    join("quarantine", "timeframe=1d", "symbol=SPY", "year=2024"),
  );
  assert.equal(timeframeDir("/d", "4h"), join("/d", "bars", "timeframe=4h"));
  assert.match(
    newFileName("2024-03-04", "2024-03-08"),
    /^2024-03-04_2024-03-08-[0-9a-f]{8}\.parquet$/,
  );
  assert.notEqual(newFileName("2024-03-04", "2024-03-04"), newFileName("2024-03-04", "2024-03-04"));
});

Deno.test("parsePartitionPath() reads the partition of a file or folder, relative or absolute", () => {
  const file = join(
    partitionDir("5m", "AAPL", "2024-02-10"),
    "2024-02-01_2024-02-29-0a1b2c3d.parquet",
  );
  assert.deepEqual(parsePartitionPath(file), {
    tree: "bars",
    timeframe: "5m",
    symbol: "AAPL",
    year: 2024,
    start: "2024-01-01",
    end: "2024-12-31",
  });
  assert.deepEqual(parsePartitionPath("/srv/data/quarantine/timeframe=1d/symbol=SPY/year=2023"), {
    tree: "quarantine",
    timeframe: "1d",
    symbol: "SPY",
    year: 2023,
    start: "2023-01-01",
    end: "2023-12-31",
  });
  // Folders above the data directory named "bars" do not confuse it.
  assert.equal(
    parsePartitionPath("/bars/data/bars/timeframe=1m/symbol=A/year=2024/x.parquet")?.symbol,
    "A",
  );
  for (
    const bad of [
      "bars/timeframe=2m/symbol=A/year=2024",
      "bars/timeframe=1m/symbol=/year=2024",
      "bars/timeframe=1m/symbol=A/year=24",
      "bars/timeframe=1m/symbol=A/year=0202",
      "bars/timeframe=1m/symbol=A",
      "reports/timeframe=1m/symbol=A/year=2024",
      "data.parquet",
    ]
  ) {
    assert.equal(parsePartitionPath(bad), undefined, bad);
  }
});

Deno.test("walkParquetFiles() lists every Parquet file with its size, never temp files", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "mp-layout-" });
  try {
    const put = async (relative: string, name: string, bytes = 4) => {
      await Deno.mkdir(join(dataDir, relative), { recursive: true });
      await Deno.writeFile(join(dataDir, relative, name), new Uint8Array(bytes));
    };
    await put(partitionDir("1m", "AAPL", "2024-01-02"), "2024-01-02_2024-01-31-00000001.parquet");
    await put(
      partitionDir("1m", "AAPL", "2024-01-02"),
      "2024-02-01_2024-02-29-00000002.parquet",
      10,
    );
    await put(partitionDir("1m", "MSFT", "2023-01-03"), "2023-01-03_2023-01-03-00000003.parquet");
    await put(partitionDir("1m", "MSFT", "2023-01-03"), ".tmp-killed-writer");
    await Deno.mkdir(join(dataDir, partitionDir("1m", "ZZZ", "2024-05-01")), { recursive: true });
    const walked = await walkParquetFiles(timeframeDir(dataDir, "1m"));
    assert.deepEqual(
      walked.map((file) => [file.path.slice(dataDir.length + 1), file.size]),
      [
        [
          join(partitionDir("1m", "AAPL", "2024-01-02"), "2024-01-02_2024-01-31-00000001.parquet"),
          4,
        ],
        [
          join(partitionDir("1m", "AAPL", "2024-01-02"), "2024-02-01_2024-02-29-00000002.parquet"),
          10,
        ],
        [
          join(partitionDir("1m", "MSFT", "2023-01-03"), "2023-01-03_2023-01-03-00000003.parquet"),
          4,
        ],
      ],
    );
    assert.equal(
      await hasParquetFile(join(dataDir, partitionDir("1m", "ZZZ", "2024-05-01"))),
      false,
    );
    assert.equal(await hasParquetFile(timeframeDir(dataDir, "1m")), true);
    assert.deepEqual(await walkParquetFiles(join(dataDir, "missing")), []);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
