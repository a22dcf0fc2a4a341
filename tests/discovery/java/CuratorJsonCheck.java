// Reads instance JSON written by rpcboot with Apache Curator's own JsonInstanceSerializer, and
// writes one with it for rpcboot to read.
//   java CuratorJsonCheck read FILE   prints name, id, address, port and metadata as Curator sees them
//   java CuratorJsonCheck write FILE  writes an instance Curator serialized
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Map;
import java.util.TreeMap;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.springframework.cloud.zookeeper.discovery.ZookeeperInstance;

public class CuratorJsonCheck {
  public static void main(String[] args) throws Exception {
    JsonInstanceSerializer<ZookeeperInstance> serializer = new JsonInstanceSerializer<>(ZookeeperInstance.class);
    if (args[0].equals("read")) {
      ServiceInstance<ZookeeperInstance> i = serializer.deserialize(Files.readAllBytes(Paths.get(args[1])));
      System.out.println("name=" + i.getName());
      System.out.println("id=" + i.getId());
      System.out.println("address=" + i.getAddress());
      System.out.println("port=" + i.getPort());
      System.out.println("sslPort=" + i.getSslPort());
      System.out.println("type=" + i.getServiceType());
      System.out.println("uri=" + i.buildUriSpec());
      System.out.println("payload.id=" + i.getPayload().getId());
      System.out.println("metadata=" + new TreeMap<>(i.getPayload().getMetadata()));
    } else {
      Map<String, String> metadata = new TreeMap<>();
      metadata.put("instance_status", "UP");
      ZookeeperInstance payload = new ZookeeperInstance("shop-java-1", "shop", metadata);
      ServiceInstance<ZookeeperInstance> i = ServiceInstance.<ZookeeperInstance>builder()
          .name("shop").id("java-1").address("127.0.0.7").port(8080).payload(payload)
          .uriSpec(new UriSpec("{scheme}://{address}:{port}")).build();
      Files.write(Paths.get(args[1]), serializer.serialize(i));
    }
  }
}
