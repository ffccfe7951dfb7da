import time, torch, sys, statistics
sys.path.insert(0,'.')
from model import CharTransformer, ModelConfig
from tinychar.settings import TrainConfig
from tinychar.step import make_optimizer, train_step
x=torch.randint(0,65,(32,128)); y=torch.randint(0,65,(32,128))
torch.manual_seed(0); m=CharTransformer(ModelConfig(vocab_size=65)); o=make_optimizer(m,TrainConfig())
for _ in range(3): train_step(m,o,x,y,1.0)
ts=[]
for _ in range(15):
    t=time.perf_counter(); train_step(m,o,x,y,1.0); ts.append(time.perf_counter()-t)
print(round(1000*statistics.median(ts),1))
