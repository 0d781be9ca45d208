package bench.javapeer;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.io.GenerateSequence;
import org.apache.beam.sdk.io.aws2.kinesis.KinesisIO;
import org.apache.beam.sdk.io.aws2.kinesis.KinesisPartitioner;
import org.apache.beam.sdk.io.aws2.options.AwsOptions;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricQueryResults;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.Default;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.options.Validation;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.PCollection;

/**
 * The bench's Java peer: Beam's Java KinesisIO (aws2 {@code KinesisIO.write()}, aggregation off) on
 * the Java DirectRunner, writing the bench's ~100-byte records ({@code bench/workload.py}'s
 * {@code small_records}, the same bytes and keys) made inside the pipeline.
 *
 * <pre>
 *   GenerateSequence(0..n) ─▶ KinesisIO.write()        (--mode=sink)
 *   GenerateSequence(0..n) ─▶ a ParDo making the same bytes and keys, writing nothing  (--mode=noop)
 *   --mode=overhead: noop, sink (--warmup records, not counted), then noop, sink, noop, sink, ...
 *                    (--rounds rounds of --records) in this one JVM
 * </pre>
 *
 * <p>Writes one JSON object to {@code --out}: the records, and each pipeline's wall seconds
 * (construction included, the JVM's start-up not). The endpoint, region and credentials are
 * AwsOptions ({@code --endpoint}, {@code --awsRegion}, {@code --awsCredentialsProvider}); the
 * bench passes {@code --clientBuilderFactory=bench.javapeer.Http1ClientBuilderFactory} and {@code
 * -Daws.cborEnabled=false} (the SDK's CBOR is mishandled by kinesalite).
 */
public final class KinesisIOPeer {
  /** Distinct partition keys: bench/workload.py's SMALL_KEYS. */
  static final int SMALL_KEYS = 10_007;

  private KinesisIOPeer() {}

  /** The peer's own options; the AWS ones are inherited. */
  public interface PeerOptions extends AwsOptions {
    @Description("sink, noop or overhead")
    @Default.String("sink")
    String getMode();

    void setMode(String value);

    @Description("the stream to write to")
    @Default.String("bench-java")
    String getStream();

    void setStream(String value);

    @Description("records per pipeline")
    @Validation.Required
    Long getRecords();

    void setRecords(Long value);

    @Description("the run's name inside each record (bench/workload.py's run)")
    @Default.String("java")
    String getRun();

    void setRun(String value);

    @Description("rounds of noop and sink for --mode=overhead")
    @Default.Integer(2)
    Integer getRounds();

    void setRounds(Integer value);

    @Description("--mode=overhead: records of a first, uncounted round of both variants (JIT, class loading)")
    @Default.Long(0)
    Long getWarmup();

    void setWarmup(Long value);

    @Description("where the JSON result goes")
    @Validation.Required
    String getOut();

    void setOut(String value);
  }

  /** The record of index i: bench/workload.py's small_records, byte for byte. */
  static final class Serializer implements SerializableFunction<Long, byte[]> {
    private final String prefix;
    private final String suffix;

    Serializer(String run) {
      this.prefix = "{\"n\":";
      this.suffix = ",\"run\":\"" + run + "\",\"p\":\"" + "x".repeat(Math.max(0, 60 - run.length())) + "\"}";
    }

    @Override
    public byte[] apply(Long i) {
      return (prefix + String.format(Locale.ROOT, "%07d", i) + suffix).getBytes(StandardCharsets.UTF_8);
    }
  }

  /** The partition key of index i: "key-" + i % SMALL_KEYS, as bench/workload.py. */
  static final class KeyPartitioner implements KinesisPartitioner<Long> {
    @Override
    public String getPartitionKey(Long i) {
      return "key-" + (i % SMALL_KEYS);
    }
  }

  /** The no-op end: makes each record's bytes and key, as the sink would, and drops them. */
  static final class NoOpFn extends DoFn<Long, Void> {
    private final Serializer serializer;
    private final KeyPartitioner partitioner = new KeyPartitioner();
    private final Counter seen = Metrics.counter("bench", "noop");
    private transient long sizes;

    NoOpFn(String run) {
      this.serializer = new Serializer(run);
    }

    @ProcessElement
    public void process(@Element Long i) {
      sizes += serializer.apply(i).length + partitioner.getPartitionKey(i).length();
      seen.inc();
    }
  }

  static double runPipeline(PeerOptions options, String mode, String run, long n) {
    long start = System.nanoTime();
    Pipeline p = Pipeline.create(options);
    PCollection<Long> indexes = p.apply("Generate", GenerateSequence.from(0).to(n));
    if (mode.equals("sink")) {
      indexes.apply(
          "Write",
          KinesisIO.<Long>write()
              .withStreamName(options.getStream())
              .withPartitioner(new KeyPartitioner())
              .withSerializer(new Serializer(run))
              .withRecordAggregationDisabled());
    } else {
      indexes.apply("NoOp", ParDo.of(new NoOpFn(run)));
    }
    PipelineResult result = p.run();
    PipelineResult.State state = result.waitUntilFinish();
    double seconds = (System.nanoTime() - start) / 1e9;
    if (state != PipelineResult.State.DONE) {
      throw new IllegalStateException("the " + mode + " pipeline ended " + state);
    }
    if (mode.equals("noop")) {
      MetricQueryResults metrics =
          result.metrics().queryMetrics(
              MetricsFilter.builder().addNameFilter(MetricNameFilter.named("bench", "noop")).build());
      long seen = 0;
      for (MetricResult<Long> counter : metrics.getCounters()) {
        seen += counter.getAttempted();
      }
      if (seen != n) {
        throw new IllegalStateException("the no-op pipeline saw " + seen + " of " + n + " records");
      }
    }
    return seconds;
  }

  static String runJson(String mode, int round, long n, double seconds, boolean warmup) {
    return String.format(
        Locale.ROOT,
        "{\"mode\":\"%s\",\"round\":%d,\"records\":%d,\"seconds\":%.3f,\"records_per_s\":%.1f,"
            + "\"warmup\":%b}",
        mode, round, n, seconds, n / seconds, warmup);
  }

  static double cpuSeconds() {
    java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
    if (os instanceof com.sun.management.OperatingSystemMXBean) {
      return ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime() / 1e9;
    }
    return 0.0;
  }

  public static void main(String[] args) throws Exception {
    // the SDK's CBOR wire format, which kinesalite mishandles: JSON instead (also passed as -D)
    System.setProperty("aws.cborEnabled", "false");
    long jvmStart = ManagementFactory.getRuntimeMXBean().getStartTime();
    try {
      PeerOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(PeerOptions.class);
      String mode = options.getMode();
      long n = options.getRecords();
      List<String> runs = new ArrayList<>();
      double sinkSeconds = 0;
      if (mode.equals("overhead")) {
        long warmup = options.getWarmup();
        for (int round = warmup > 0 ? -1 : 0; round < options.getRounds(); round++) {
          long records = round < 0 ? warmup : n;
          for (String variant : new String[] {"noop", "sink"}) {
            double s = runPipeline(options, variant, variant + "-" + round, records);
            runs.add(runJson(variant, round, records, s, round < 0));
            System.err.println(runs.get(runs.size() - 1));
          }
        }
      } else if (mode.equals("sink") || mode.equals("noop")) {
        sinkSeconds = runPipeline(options, mode, options.getRun(), n);
        runs.add(runJson(mode, 0, n, sinkSeconds, false));
      } else {
        throw new IllegalArgumentException("--mode must be sink, noop or overhead, not " + mode);
      }
      String json =
          String.format(
              Locale.ROOT,
              "{\"mode\":\"%s\",\"records\":%d,\"seconds\":%.2f,\"cpu_s\":%.2f,\"jvm_s\":%.2f,"
                  + "\"java\":\"%s\",\"runs\":[%s]}",
              mode, n, sinkSeconds, cpuSeconds(),
              (System.currentTimeMillis() - jvmStart) / 1000.0,
              System.getProperty("java.version"), String.join(",", runs));
      Files.write(Paths.get(options.getOut()), json.getBytes(StandardCharsets.UTF_8));
      System.out.println(json);
      System.exit(0);
    } catch (Throwable error) {
      StringWriter trace = new StringWriter();
      error.printStackTrace(new PrintWriter(trace));
      System.err.println(trace);
      Throwable root = error;
      while (root.getCause() != null && root.getCause() != root) {
        root = root.getCause();
      }
      // the last line of the log: what the bench shows as the reason
      System.err.println("java peer failed: " + root.getClass().getName() + ": " + root.getMessage());
      System.exit(2);
    }
  }
}
