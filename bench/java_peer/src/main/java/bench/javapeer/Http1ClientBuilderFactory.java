package bench.javapeer;

import javax.annotation.Nullable;
import org.apache.beam.sdk.io.aws2.common.ClientBuilderFactory;
import org.apache.beam.sdk.io.aws2.common.ClientConfiguration;
import org.apache.beam.sdk.io.aws2.options.AwsOptions;
import software.amazon.awssdk.awscore.client.builder.AwsClientBuilder;
import software.amazon.awssdk.core.client.builder.SdkAsyncClientBuilder;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;

/**
 * Beam's default client builder, except that an asynchronous client (KinesisIO's) gets a Netty
 * client speaking HTTP/1.1: the Kinesis async client speaks HTTP/2 by default, which kinesalite and
 * the bench's HTTP/1.1 fronts refuse ("First received frame was not SETTINGS").
 *
 * <p>Selected with {@code --clientBuilderFactory=bench.javapeer.Http1ClientBuilderFactory}.
 */
public class Http1ClientBuilderFactory implements ClientBuilderFactory, java.io.Serializable {
  /** Connections per client, as many as the concurrent requests the writer may have in flight. */
  static final int MAX_CONCURRENCY = 64;

  public Http1ClientBuilderFactory() {}

  @Override
  public <BuilderT extends AwsClientBuilder<BuilderT, ClientT>, ClientT> BuilderT create(
      BuilderT builder, ClientConfiguration config, @Nullable AwsOptions options) {
    BuilderT configured = ClientBuilderFactory.defaultFactory().create(builder, config, options);
    if (configured instanceof SdkAsyncClientBuilder) {
      ((SdkAsyncClientBuilder<?, ?>) configured)
          .httpClientBuilder(
              NettyNioAsyncHttpClient.builder()
                  .protocol(Protocol.HTTP1_1)
                  .maxConcurrency(MAX_CONCURRENCY));
    }
    return configured;
  }

  @Override
  public void checkConfiguration(ClientConfiguration config, @Nullable AwsOptions options) {
    ClientBuilderFactory.defaultFactory().checkConfiguration(config, options);
  }
}
