package io.resilin.spark;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.server.api.ApplicationInitializationContext;
import org.apache.hadoop.yarn.server.api.ApplicationTerminationContext;
import org.apache.hadoop.yarn.server.api.AuxiliaryService;
import org.apache.hadoop.yarn.server.api.ContainerInitializationContext;
import org.apache.hadoop.yarn.server.api.ContainerTerminationContext;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.server.TransportServer;
import org.apache.spark.network.server.TransportServerBootstrap;
import org.apache.spark.network.shuffle.ExternalBlockHandler;
import org.apache.spark.network.util.ConfigProvider;
import org.apache.spark.network.util.TransportConf;

/**
 * Spark's external shuffle service as a NodeManager aux-service ("spark_shuffle").
 *
 * Executors register their shuffle files with it, so that dynamic allocation can let an
 * executor go while its map output is still served.  Spark's own YarnShuffleService is not
 * published for this Spark line; this is the part of it a cluster without authentication
 * needs: the block handler of spark-network-shuffle behind a TransportServer on
 * spark.shuffle.service.port (7337), an application's files dropped when it ends.
 * The NodeManager loads it in a classloader of its own
 * (yarn.nodemanager.aux-services.spark_shuffle.classpath), apart from Hadoop's jars.
 */
public class YarnShuffleService extends AuxiliaryService {
  static final String PORT = "spark.shuffle.service.port";
  static final int DEFAULT_PORT = 7337;

  private ExternalBlockHandler handler;
  private TransportServer server;
  private TransportContext context;

  public YarnShuffleService() {
    super("spark_shuffle");
  }

  /** Spark's transport settings read from the NodeManager's yarn-site. */
  static final class HadoopConfig extends ConfigProvider {
    private final Configuration conf;

    HadoopConfig(Configuration conf) {
      this.conf = conf;
    }

    @Override
    public String get(String name) {
      String value = conf.get(name);
      if (value == null) {
        throw new java.util.NoSuchElementException(name);
      }
      return value;
    }

    @Override
    public String get(String name, String defaultValue) {
      String value = conf.get(name);
      return value == null ? defaultValue : value;
    }

    @Override
    public Iterable<Map.Entry<String, String>> getAll() {
      return conf;
    }
  }

  @Override
  protected void serviceInit(Configuration conf) throws Exception {
    TransportConf transport = new TransportConf("shuffle", new HadoopConfig(conf));
    handler = new ExternalBlockHandler(transport, null);
    context = new TransportContext(transport, handler, true);
    List<TransportServerBootstrap> bootstraps = new ArrayList<>();
    server = context.createServer(conf.getInt(PORT, DEFAULT_PORT), bootstraps);
    super.serviceInit(conf);
  }

  @Override
  public void initializeApplication(ApplicationInitializationContext app) {}

  @Override
  public void stopApplication(ApplicationTerminationContext app) {
    // The application is over: its executors' shuffle files are of no use any more.
    handler.applicationRemoved(app.getApplicationId().toString(), true);
  }

  @Override
  public void initializeContainer(ContainerInitializationContext container) {}

  @Override
  public void stopContainer(ContainerTerminationContext container) {}

  @Override
  public ByteBuffer getMetaData() {
    return ByteBuffer.allocate(0);
  }

  @Override
  protected void serviceStop() throws Exception {
    if (server != null) {
      server.close();
    }
    if (context != null) {
      context.close();
    }
    if (handler != null) {
      handler.close();
    }
    super.serviceStop();
  }
}
